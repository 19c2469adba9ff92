package daemon

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/delvedns/delve/internal/api"
	"github.com/delvedns/delve/internal/json"
	"github.com/delvedns/delve/internal/jsonrpc"
)

// TestCachedLookupAnsweredAtOnce: on a socket connection whose every slot for calls that wait
// (jsonrpc.DefaultMaxInFlight) is held by lookups the upstream never answers, a lookup the cache
// holds is still answered, at once and before them: the goroutine that read it answers it. A
// lookup that is not cached waits, as before.
func TestCachedLookupAnsweredAtOnce(t *testing.T) {
	port, caFile := slowNamesDoT(t)
	dir := t.TempDir()
	socket := filepath.Join(dir, "delve.sock")
	path := filepath.Join(dir, "delve")
	text := fmt.Sprintf("config delve 'main'\n\toption timeout '20000'\n\toption socket '%s'\n\toption ca_file '%s'\n"+
		"\nconfig upstream 'slow'\n\toption address '127.0.0.1'\n\toption port '%d'\n\toption tls_name 'slow.delve.test'\n",
		socket, caFile, port)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	start(t, path)
	cl := dial(t, socket)
	var l api.Lookup
	if err := call(t, cl, "lookup", map[string]string{"name": "fast.delve.test", "type": "A"}, &l); err != nil || l.Cached {
		t.Fatalf("%+v, %v: want an answer from the upstream", l, err)
	}

	c, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var b strings.Builder
	for i := range jsonrpc.DefaultMaxInFlight {
		fmt.Fprintf(&b, `{"jsonrpc":"2.0","id":%d,"method":"lookup","params":{"name":"slow%d.delve.test","type":"A"}}`+"\n", i, i)
	}
	b.WriteString(`{"jsonrpc":"2.0","id":"cached","method":"lookup","params":{"name":"fast.delve.test","type":"A"}}` + "\n")
	c.SetDeadline(time.Now().Add(15 * time.Second)) // before the slow lookups' 20 s
	if _, err := c.Write([]byte(b.String())); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("no response while the slow lookups wait: %v", err)
	}
	var r struct {
		ID     string     `json:"id"`
		Result api.Lookup `json:"result"`
	}
	if err := json.Unmarshal([]byte(line), &r); err != nil || r.ID != "cached" || !r.Result.Cached ||
		strings.Join(r.Result.Addresses, ",") != "192.0.2.9" {
		t.Fatalf("first response %s (%v), want the cached lookup's", line, err)
	}
}
