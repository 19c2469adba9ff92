package testenv

import "testing"

// UnboundT starts a test unbound in t.TempDir() and stops it when the test ends. It fails the
// test when unbound is missing or does not start.
func UnboundT(t testing.TB, opts UnboundOptions) *Unbound {
	t.Helper()
	RequireTool(t, "unbound", "unbound")
	u, err := StartUnbound(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := u.Close(); err != nil {
			t.Error(err)
		}
	})
	return u
}

// KdigT runs Kdig against u and fails the test on error.
func KdigT(t testing.TB, u *Unbound, name, typ string) *KdigResult {
	t.Helper()
	RequireTool(t, "kdig", "knot-dnsutils")
	r, err := Kdig(t.Context(), u.KdigQuery(name, typ))
	if err != nil {
		t.Fatal(err)
	}
	return r
}
