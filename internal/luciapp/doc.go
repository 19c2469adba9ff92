// Package luciapp reads luci-app-delve, the LuCI application in the repository's luci-app-delve
// directory, for its tests and for scripts/lucipot: a JavaScript tokenizer that knows comments,
// strings, template literals and regular expression literals (so that a quote inside one of them
// is not taken for a string), the _() calls and menu titles that make the translation template,
// and the rpc.declare calls and form options of the views. Its tests hold the application to
// the daemon: the methods its views call, the ACL, the UCI options its form writes, the checks
// its form makes and the presets it offers. None of it is in the delve binary.
package luciapp
