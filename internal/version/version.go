// Package version holds the version and build time stamped into the binary at link time.
package version

import (
	"runtime/debug"
	"strconv"
	"time"
)

// Version is set with -ldflags "-X github.com/delvedns/delve/internal/version.Version=...".
var Version = "dev"

// BuildTime is the build's date in Unix seconds, set with
// -ldflags "-X github.com/delvedns/delve/internal/version.BuildTime=$SOURCE_DATE_EPOCH".
var BuildTime = ""

// Built returns when this binary was built: BuildTime, else the time of the commit it was built
// from (recorded by the go command in a git checkout), else the zero time.
func Built() time.Time {
	if n, err := strconv.ParseInt(BuildTime, 10, 64); err == nil && n > 0 {
		return time.Unix(n, 0)
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.time" {
				if t, err := time.Parse(time.RFC3339, s.Value); err == nil {
					return t
				}
			}
		}
	}
	return time.Time{}
}

// ClockBeforeBuild reports whether now is earlier than the build: the system clock cannot be
// right, as on a router without a real-time clock before NTP has set it.
func ClockBeforeBuild(now time.Time) bool {
	b := Built()
	return !b.IsZero() && now.Before(b)
}
