// Package version holds the version and build time stamped into the binary at link time.
package version

// Version is set with -ldflags "-X github.com/delvedns/delve/internal/version.Version=...".
var Version = "dev"
