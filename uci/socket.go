package uci

// MainSocket returns the main.socket the file at path names, read by libuci's rules without
// validating anything else, or DefaultSocket when it names none. The control commands (delve
// status, flush, reload) find the daemon with it: a file that no longer loads, being edited or
// the very reason for a reload, still says where the daemon that loaded an earlier version of
// it listens. The main section is chosen as Load chooses it.
func MainSocket(path string) (string, error) {
	data, err := readFile(path)
	if err != nil {
		return "", err
	}
	raw, err := parseUCI(data)
	if err != nil {
		se := err.(*syntaxError)
		return "", &Error{File: path, Line: se.line, Msg: se.msg}
	}
	var main *rawSection
	for _, s := range raw.sections {
		if s.typ != "delve" {
			continue
		}
		if s.name == "main" {
			main = s
			break
		}
		if main == nil {
			main = s
		}
	}
	if main == nil || (main.name != "main" && main.name != "") {
		return DefaultSocket, nil
	}
	if o := main.option("socket"); o != nil && !o.list && len(o.values) == 1 && o.values[0] != "" {
		return o.values[0], nil
	}
	return DefaultSocket, nil
}
