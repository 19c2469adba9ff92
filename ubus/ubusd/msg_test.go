package ubusd

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/delvedns/delve/ubus/blob"
)

// record is one message of a recorded session.
type record struct {
	conn       int
	fromClient bool
	b          []byte
}

// transcript reads ../testdata/session.txt.
func transcript(t testing.TB) []record {
	t.Helper()
	f, err := os.Open("../testdata/session.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []record
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		fs := strings.Fields(line)
		if len(fs) != 3 {
			t.Fatalf("bad transcript line %q", line)
		}
		n, err := strconv.Atoi(fs[0])
		b, err2 := hex.DecodeString(fs[2])
		if err != nil || err2 != nil || (fs[1] != "c>d" && fs[1] != "d>c") {
			t.Fatalf("bad transcript line %q", line)
		}
		out = append(out, record{conn: n, fromClient: fs[1] == "c>d", b: b})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func msg(t testing.TB, typ MsgType, seq uint16, peer uint32, build func(w *blob.Buf)) []byte {
	t.Helper()
	var w blob.Buf
	if build != nil {
		build(&w)
	}
	b, err := Append(nil, Header{Type: typ, Seq: seq, Peer: peer}, w.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHeaderGolden(t *testing.T) {
	// ubusd's HELLO to client 0xe6bae1e3, the first line of the recorded session: version 0, type 0, seq 0,
	// the client id, an empty blob of length 4.
	if got, want := msg(t, MsgHello, 0, 0xe6bae1e3, nil), "00000000"+"e6bae1e3"+"00000004"; hex.EncodeToString(got) != want {
		t.Fatalf("got %x, want %s", got, want)
	}
	b := msg(t, MsgStatus, 0x1234, 7, func(w *blob.Buf) { w.PutU32(AttrStatus, uint32(StatusMethodNotFound)); w.PutU32(AttrObjID, 9) })
	if want := "00011234 00000007 00000014 01000008 00000003 03000008 00000009"; hex.EncodeToString(b) != strings.ReplaceAll(want, " ", "") {
		t.Fatalf("got %x, want %s", b, want)
	}
	m, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := m.U32(AttrStatus); m.Type != MsgStatus || m.Seq != 0x1234 || m.Peer != 7 || Status(st) != StatusMethodNotFound {
		t.Fatalf("decoded %+v", m.Header)
	}
}

func TestDecodeRefuses(t *testing.T) {
	ok := msg(t, MsgInvoke, 1, 2, func(w *blob.Buf) { w.PutU32(AttrObjID, 1); w.PutString(AttrMethod, "status") })
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, blob.ErrMalformed},
		{"header only", ok[:8], blob.ErrMalformed},
		{"version 1", append([]byte{1}, ok[1:]...), blob.ErrMalformed},
		{"blob length below its header", append(append([]byte{}, ok[:8]...), 0, 0, 0, 3), blob.ErrMalformed},
		{"blob longer than the message", ok[:len(ok)-4], blob.ErrMalformed},
		{"blob shorter than the message", append(append([]byte{}, ok...), 0, 0, 0, 0, 0, 0, 0, 0), blob.ErrMalformed},
		{"over 1 MiB", append(append([]byte{}, ok[:8]...), 0, 0x10, 0, 4), ErrTooLarge},
		{"objid of 2 bytes", msg(t, MsgInvoke, 1, 2, func(w *blob.Buf) { w.Put(AttrObjID, []byte{0, 1}) }), blob.ErrMalformed},
		{"method not a string", msg(t, MsgInvoke, 1, 2, func(w *blob.Buf) { w.Put(AttrMethod, []byte("abcd")) }), blob.ErrMalformed},
		{"active of 4 bytes", msg(t, MsgNotify, 1, 2, func(w *blob.Buf) { w.PutU32(AttrActive, 1) }), blob.ErrMalformed},
		{"attribute past the end", append(append([]byte{}, ok[:8]...), 0, 0, 0, 12, 3, 0, 0, 12, 0, 0, 0, 1), blob.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Decode(tt.b); !errors.Is(err, tt.want) {
				t.Fatalf("Decode: %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := Decode(ok); err != nil {
		t.Fatal(err)
	}
}

// TestReadAllocatesWhatArrives: a peer that claims a 1 MiB message and sends 100 bytes costs
// about 100 bytes, and a claim over 1 MiB is refused before anything is read.
func TestReadAllocatesWhatArrives(t *testing.T) {
	claim := append([]byte{0, 2, 0, 1, 0, 0, 0, 1}, 0, 0x0f, 0xff, 0xfc)
	in := append(claim, make([]byte, 100)...)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, _, err := Read(bytes.NewReader(in))
	runtime.ReadMemStats(&after)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("Read: %v, want unexpected EOF", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 64<<10 {
		t.Fatalf("%d bytes allocated for 112 bytes of input", got)
	}
	if _, _, err := Read(bytes.NewReader([]byte{0, 2, 0, 1, 0, 0, 0, 1, 0, 0x10, 0, 4})); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Read of a 1 MiB + 4 claim: %v", err)
	}
}

func FuzzMessage(f *testing.F) {
	for _, r := range transcript(f) {
		f.Add(r.b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		m2, raw, err2 := Read(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, blob.ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("Decode error %v is neither malformed nor too large", err)
			}
			return
		}
		if err2 != nil {
			t.Fatalf("Decode accepted what Read refused: %v", err2)
		}
		if m.Header != m2.Header || !bytes.Equal(raw, b[:len(raw)]) {
			t.Fatalf("Read and Decode differ")
		}
		if a, ok := m.Attr(AttrData); ok {
			if _, err := blob.AppendJSON(nil, a.Data, true); err != nil && !errors.Is(err, blob.ErrMalformed) {
				t.Fatal(err)
			}
		}
	})
}
