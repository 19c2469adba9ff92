package version

import (
	"testing"
	"time"
)

// TestBuiltIsTheLatestBound: Built is the latest of what is known to be past when the binary
// runs: BuildTime when later than sourceDate, never earlier than sourceDate (a BuildTime of 0 or
// garbage, as an unset SOURCE_DATE_EPOCH gives, or an old one, does not lower it).
func TestBuiltIsTheLatestBound(t *testing.T) {
	saved := BuildTime
	t.Cleanup(func() { BuildTime = saved })
	cases := []struct {
		buildTime string
		want      time.Time
	}{
		{"", sourceDate},
		{"0", sourceDate},
		{"garbage", sourceDate},
		{"1577836800", sourceDate}, // 2020: older than the source
		{"1796601600", time.Unix(1796601600, 0)},
	}
	for _, c := range cases {
		BuildTime = c.buildTime
		// go test records no VCS time, so only BuildTime and sourceDate count here.
		if got := Built(); !got.Equal(c.want) {
			t.Errorf("BuildTime %q: Built() = %v, want %v", c.buildTime, got, c.want)
		}
		if ClockBeforeBuild(c.want) || !ClockBeforeBuild(c.want.Add(-time.Second)) || !ClockBeforeBuild(time.Unix(0, 0)) {
			t.Errorf("BuildTime %q: ClockBeforeBuild is wrong around %v", c.buildTime, c.want)
		}
	}
}

// TestSource: the stamped commit wins; without one, a test binary (no VCS information) says
// "unknown" rather than nothing.
func TestSource(t *testing.T) {
	saved := Commit
	t.Cleanup(func() { Commit = saved })
	Commit = "c80a246-dirty"
	if got := Source(); got != "c80a246-dirty" {
		t.Errorf("Source() = %q with Commit set", got)
	}
	Commit = ""
	if got := Source(); got == "" {
		t.Error("Source() is empty without Commit")
	}
}
