// Package version holds the version and build time stamped into the binary at link time.
package version

import (
	"runtime/debug"
	"strconv"
	"time"
)

// Version is the package version, X.Y.Z-rN as scripts/pkgversion computes it, the same string
// the .ipk's and the .apk's Version field carry (opkg list-installed, apk info). Every build
// sets it with -ldflags "-X github.com/delvedns/delve/internal/version.Version=...": the
// Makefile, scripts/build-arch and the feed recipe ($(PKG_VERSION)-r$(PKG_RELEASE)). "dev" is a
// plain go build or go run.
var Version = "dev"

// Commit is the commit the binary was built from, git's short hash with "-dirty" when the tree
// had changes, set with -X like Version (the feed recipe sets PKG_SOURCE_VERSION, the tag or hash
// it fetched). Empty: see Source.
var Commit = ""

// Source returns the commit the binary was built from: Commit, else the revision the go command
// recorded when it built in a git checkout, else "unknown".
func Source() string {
	if Commit != "" {
		return Commit
	}
	rev, dirty := "", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "-dirty"
				}
			}
		}
	}
	if rev == "" {
		return "unknown"
	}
	return rev[:min(len(rev), 7)] + dirty
}

// BuildTime is the build's date in Unix seconds, set with
// -ldflags "-X github.com/delvedns/delve/internal/version.BuildTime=$SOURCE_DATE_EPOCH"
// (the Makefile, scripts/build-arch and the feed recipe do; SOURCE_DATE_EPOCH defaults to the
// time of the last commit).
var BuildTime = ""

// sourceDate is a date no later than the day this source was written (2026-12-07): a binary
// built from it runs after that date, whatever else is unknown. It is the floor of Built for a
// build without -X BuildTime and outside a git checkout (go test, go run).
var sourceDate = time.Date(2026, time.December, 7, 0, 0, 0, 0, time.UTC)

// Built returns a time this binary was built at or after, a lower bound of the real time when
// it runs: the latest of BuildTime, the time of the commit it was built from (which the go
// command records when it builds in a git checkout), and sourceDate. Each is known to be in the
// past when the binary runs, so the latest is the tightest bound.
func Built() time.Time {
	t := sourceDate
	if n, err := strconv.ParseInt(BuildTime, 10, 64); err == nil && n > 0 {
		t = later(t, time.Unix(n, 0))
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.time" {
				if vt, err := time.Parse(time.RFC3339, s.Value); err == nil {
					t = later(t, vt)
				}
			}
		}
	}
	return t
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// ClockBeforeBuild reports whether now is earlier than the build: the system clock cannot be
// right, as on a router without a real-time clock before NTP has set it.
func ClockBeforeBuild(now time.Time) bool {
	return now.Before(Built())
}
