package ws

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestMalformedRequestsDoNotLogTheToken: http.ReadRequest's errors quote the bad request or
// header line, which may carry the token (in the query, percent-encoded or not, or in an
// Authorization line without its colon); the debug log shows neither.
func TestMalformedRequestsDoNotLogTheToken(t *testing.T) {
	const token = "s3cret+Token/42"
	var log lockedBuffer
	ts := startWS(t, Options{Token: token, Logger: slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	for _, req := range []string{
		"GET /?token=" + token + "\r\n\r\n",
		"GET/?token=" + token + " HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /?token=s3cret%2BToken%2F42\r\n\r\n",
		"GET /?a=1&token=s3cret%2BToken%2F42&b=2 HTTP/1.1 x\r\nHost: x\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nAuthorization Bearer " + token + "\r\n\r\n",
	} {
		nc, br := rawConn(t, ts)
		io.WriteString(nc, req)
		if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("%q: %v %v", req, resp, err)
		}
	}
	got := log.String()
	if strings.Count(got, "reading an HTTP request") != 5 {
		t.Fatalf("want five debug lines, got:\n%s", got)
	}
	for _, leak := range []string{token, "s3cret", "Token%2F42"} {
		if strings.Contains(got, leak) {
			t.Fatalf("the log shows %q:\n%s", leak, got)
		}
	}
}
