package ubusd

import (
	"bytes"
	"context"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/delvedns/delve/ubus/blob"
)

// The recorded session (../testdata/session.txt, README.md there) is real ubusd talking to
// delve's client (connection 1) and to libubus's `ubus` command (the others).

// TestTranscriptDecodes: every message ubusd and libubus sent decodes, and its attributes and
// blobmsg data encode back to the same bytes.
func TestTranscriptDecodes(t *testing.T) {
	recs := transcript(t)
	if len(recs) < 40 {
		t.Fatalf("%d messages in the transcript", len(recs))
	}
	for i, r := range recs {
		m, err := Decode(r.b)
		if err != nil {
			t.Fatalf("message %d (%x): %v", i, r.b, err)
		}
		attrs, err := blob.Attrs(r.b[HeaderLen+blob.HeaderLen:])
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		var w blob.Buf
		for _, a := range attrs {
			w.Put(a.ID, a.Data)
			if a.ID == AttrData || a.ID == AttrSignature {
				fs, err := blob.Decode(a.Data, true)
				if err != nil {
					t.Fatalf("message %d (%s) attribute %d: %v", i, m.Type, a.ID, err)
				}
				var again blob.Buf
				again.Encode(fs)
				if !bytes.Equal(again.Bytes(), a.Data) {
					t.Fatalf("message %d attribute %d re-encoded\n%x\nwas\n%x", i, a.ID, again.Bytes(), a.Data)
				}
			}
		}
		if !bytes.Equal(w.Bytes(), r.b[HeaderLen+blob.HeaderLen:]) {
			t.Fatalf("message %d re-encoded\n%x\nwas\n%x", i, w.Bytes(), r.b[HeaderLen+blob.HeaderLen:])
		}
	}
}

// TestTranscriptArguments: the arguments `ubus call` made of its JSON (libubox
// blobmsg_add_json_from_string) are what blob.AddJSON makes of it.
func TestTranscriptArguments(t *testing.T) {
	const args = `{"name":"a..b","n":5,"neg":-7,"big":5000000000,"f":1.5,"b":true,"z":null,"arr":[1,"x",false],"t":{"k":"v","e":{}}}`
	var want []byte
	for _, r := range transcript(t) {
		if r.conn == 2 && r.fromClient && r.b[1] == byte(MsgInvoke) {
			m, _ := Decode(r.b)
			a, _ := m.Attr(AttrData)
			want = a.Data
		}
	}
	var w blob.Buf
	if err := blob.AddJSON(&w, []byte(args)); err != nil {
		t.Fatal(err)
	}
	if want == nil || !bytes.Equal(w.Bytes(), want) {
		t.Fatalf("AddJSON made\n%x\nubus call sent\n%x", w.Bytes(), want)
	}
}

func socketpair(t *testing.T) (*net.UnixConn, *net.UnixConn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "socketpair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		return c.(*net.UnixConn)
	}
	return conn(fds[0]), conn(fds[1])
}

// TestTranscriptReplay plays ubusd's side of connection 1 to the client and holds every message
// the client sends to the recorded one, byte for byte: registration with the recorded
// signature, the answers to the forwarded calls (sequence number and caller echoed), the
// subscriber flag, a notification and the removal.
func TestTranscriptReplay(t *testing.T) {
	var recs []record
	for _, r := range transcript(t) {
		if r.conn == 1 {
			recs = append(recs, r)
		}
	}
	// The object as registered, and each call's recorded reply, by sequence number.
	var obj Object
	var replies [][]byte // the recorded DATA answers, in order
	var objID uint32
	for _, r := range recs {
		m, _ := Decode(r.b)
		switch {
		case r.fromClient && m.Type == MsgAddObject:
			obj.Name, _ = m.String(AttrObjPath)
			sig, _ := m.Attr(AttrSignature)
			fs, err := blob.Decode(sig.Data, true)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range fs {
				meth := Method{Name: f.Name}
				for _, p := range f.List {
					meth.Params = append(meth.Params, Param{Name: p.Name, Type: blob.Type(p.Int)})
				}
				obj.Methods = append(obj.Methods, meth)
			}
		case r.fromClient && m.Type == MsgData:
			a, _ := m.Attr(AttrData)
			replies = append(replies, a.Data)
		case !r.fromClient && m.Type == MsgData && objID == 0:
			objID, _ = m.U32(AttrObjID)
		}
	}
	if obj.Name != "delve" || len(obj.Methods) == 0 || objID == 0 || len(replies) < 3 {
		t.Fatalf("transcript: object %+v, id %x, %d replies", obj, objID, len(replies))
	}
	obj.Handler = func(_ context.Context, r *Request) ([]byte, Status) {
		// The calls come one at a time, in the recorded order.
		if len(replies) == 0 {
			return nil, StatusUnknownError
		}
		data := replies[0]
		replies = replies[1:]
		return data, StatusOK
	}
	active := make(chan bool, 4)
	obj.OnSubscribe = func(on bool) { active <- on }

	ours, theirs := socketpair(t)
	defer theirs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := theirs.Write(recs[0].b); err != nil { // HELLO
		t.Fatal(err)
	}
	c, err := NewConn(ctx, ours, Options{MaxInFlight: 1}) // one call at a time: replies in order
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	added := make(chan error, 1)
	var gotID uint32
	go func() {
		var err error
		gotID, err = c.Add(ctx, &obj)
		added <- err
	}()
	for i, r := range recs[1:] {
		if !r.fromClient {
			if _, err := theirs.Write(r.b); err != nil {
				t.Fatal(err)
			}
			continue
		}
		switch MsgType(r.b[1]) {
		case MsgNotify:
			select {
			case on := <-active:
				if !on {
					t.Fatal("told of no subscribers before the notification")
				}
			case <-ctx.Done():
				t.Fatal("never told of the subscriber")
			}
			if !c.Subscribed(objID) {
				t.Fatal("Subscribed is false after the flag")
			}
			m, _ := Decode(r.b)
			typ, _ := m.String(AttrMethod)
			data, _ := m.Attr(AttrData)
			if err := c.Notify(objID, typ, data.Data); err != nil {
				t.Fatal(err)
			}
		case MsgRemoveObject:
			if on := <-active; on {
				t.Fatal("the subscriber's leaving was not told")
			}
			go func() { _ = c.Remove(ctx, objID) }()
		}
		_ = theirs.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, got, err := Read(theirs)
		if err != nil {
			t.Fatalf("message %d: %v", i+1, err)
		}
		if !bytes.Equal(got, r.b) {
			t.Fatalf("message %d from the client\n%x\nrecorded\n%x", i+1, got, r.b)
		}
	}
	if err := <-added; err != nil || gotID != objID {
		t.Fatalf("Add: id %x, %v; recorded %x", gotID, err, objID)
	}
}
