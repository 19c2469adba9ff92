// Package ubusd is the client side of ubusd's protocol (ubus ubusmsg.h, libubus): it connects
// to ubusd's unix socket, registers objects with their method signatures, answers the calls
// ubusd forwards to them, each in its own goroutine, and sends notifications to their
// subscribers.
//
// A message is an 8-byte header (version 0, type, big-endian sequence number and peer id)
// followed by one blob attribute whose data are the message's attributes (UBUS_ATTR_*). ubusd
// refuses a message whose padded blob is larger than MaxMessage, and so does Read.
package ubusd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/delvedns/delve/ubus/blob"
)

// MsgType is the type of a message (enum ubus_msg_type).
type MsgType uint8

// Message types.
const (
	MsgHello MsgType = iota
	MsgStatus
	MsgData
	MsgPing
	MsgLookup
	MsgInvoke
	MsgAddObject
	MsgRemoveObject
	MsgSubscribe
	MsgUnsubscribe
	MsgNotify
	MsgMonitor
)

var msgNames = [...]string{"hello", "status", "data", "ping", "lookup", "invoke", "add_object",
	"remove_object", "subscribe", "unsubscribe", "notify", "monitor"}

func (t MsgType) String() string {
	if int(t) < len(msgNames) {
		return msgNames[t]
	}
	return fmt.Sprintf("type %d", uint8(t))
}

// Message attributes (enum ubus_msg_attr).
const (
	AttrStatus      = 1
	AttrObjPath     = 2
	AttrObjID       = 3
	AttrMethod      = 4
	AttrObjType     = 5
	AttrSignature   = 6
	AttrData        = 7
	AttrTarget      = 8
	AttrActive      = 9
	AttrNoReply     = 10
	AttrSubscribers = 11
	AttrUser        = 12
	AttrGroup       = 13
	attrMax         = 14
)

// Status is a call's result code (enum ubus_msg_status).
type Status int32

// Status codes.
const (
	StatusOK Status = iota
	StatusInvalidCommand
	StatusInvalidArgument
	StatusMethodNotFound
	StatusNotFound
	StatusNoData
	StatusPermissionDenied
	StatusTimeout
	StatusNotSupported
	StatusUnknownError
	StatusConnectionFailed
	StatusNoMemory
	StatusParseError
	StatusSystemError
)

// The texts `ubus` prints for each status (libubus ubus_strerror).
var statusNames = [...]string{"Success", "Invalid command", "Invalid argument", "Method not found",
	"Not found", "No response", "Permission denied", "Request timed out", "Operation not supported",
	"Unknown error", "Connection failed", "Out of memory", "Parsing message data failed",
	"System error"}

func (s Status) String() string {
	if s >= 0 && int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("status %d", int32(s))
}

// Error makes a non-zero status an error.
func (s Status) Error() string { return "ubus: " + s.String() }

// Sizes.
const (
	// HeaderLen is the size of a message header.
	HeaderLen = 8
	// MaxMessage is ubusd's UBUS_MAX_MSGLEN: the largest padded blob of a message (1 MiB as
	// OpenWrt builds ubus). libubus reads into buffers grown in 64 KiB chunks
	// (UBUS_MSG_CHUNK_SIZE) up to it.
	MaxMessage = 1 << 20
)

// ErrTooLarge is returned for a message over MaxMessage.
var ErrTooLarge = errors.New("ubus message larger than 1 MiB")

// Header is a message header.
type Header struct {
	Version uint8
	Type    MsgType
	Seq     uint16
	Peer    uint32
}

// Message is a decoded message: its header and its attributes by id (a later duplicate wins, as
// in libubox's blob_parse).
type Message struct {
	Header
	attrs [attrMax]blob.Attr
	has   uint16
}

// Attr returns the attribute id of m.
func (m *Message) Attr(id int) (blob.Attr, bool) {
	if id <= 0 || id >= attrMax || m.has&(1<<id) == 0 {
		return blob.Attr{}, false
	}
	return m.attrs[id], true
}

// U32 returns the int32 attribute id.
func (m *Message) U32(id int) (uint32, bool) {
	a, ok := m.Attr(id)
	if !ok {
		return 0, false
	}
	v, err := blob.U32(a)
	return v, err == nil
}

// String returns the string attribute id.
func (m *Message) String(id int) (string, bool) {
	a, ok := m.Attr(id)
	if !ok {
		return "", false
	}
	s, err := blob.String(a)
	return s, err == nil
}

// policy is the type each attribute must have (ubusd_proto.c's ubus_policy, and 1-byte flags).
func checkAttr(a blob.Attr) error {
	var err error
	switch a.ID {
	case AttrStatus, AttrObjID, AttrObjType:
		_, err = blob.U32(a)
	case AttrObjPath, AttrMethod, AttrUser, AttrGroup:
		_, err = blob.String(a)
	case AttrActive, AttrNoReply:
		_, err = blob.U8(a)
	}
	return err
}

// Decode decodes one whole message: b holds the header and exactly the blob the header's length
// word says (its padding may be left out).
func Decode(b []byte) (Message, error) {
	var m Message
	if len(b) < HeaderLen+blob.HeaderLen {
		return m, fmt.Errorf("%w: a message of %d bytes is shorter than its headers", blob.ErrMalformed, len(b))
	}
	m.Header = Header{Version: b[0], Type: MsgType(b[1]), Seq: binary.BigEndian.Uint16(b[2:]), Peer: binary.BigEndian.Uint32(b[4:])}
	if m.Version != 0 {
		return m, fmt.Errorf("%w: message version %d (only 0 exists)", blob.ErrMalformed, m.Version)
	}
	n, err := blobLen(b[HeaderLen:])
	if err != nil {
		return m, err
	}
	body := b[HeaderLen:]
	if n != len(body) && blob.Pad(n) != len(body) {
		return m, fmt.Errorf("%w: the message's blob says %d bytes, %d are there", blob.ErrMalformed, n, len(body))
	}
	rest := body[blob.HeaderLen:n]
	for len(rest) > 0 {
		a, next, err := blob.Next(rest)
		if err != nil {
			return m, err
		}
		rest = next
		if a.Extended || a.ID == 0 || a.ID >= attrMax {
			continue // not an attribute of this protocol: ignored, as blob_parse does
		}
		if err := checkAttr(a); err != nil {
			return m, err
		}
		m.attrs[a.ID] = a
		m.has |= 1 << a.ID
	}
	return m, nil
}

// blobLen checks the blob header word at the start of b and returns its length.
func blobLen(b []byte) (int, error) {
	n := int(binary.BigEndian.Uint32(b) & blob.MaxLen)
	if n < blob.HeaderLen {
		return 0, fmt.Errorf("%w: a message blob of length %d", blob.ErrMalformed, n)
	}
	if blob.Pad(n) > MaxMessage {
		return 0, ErrTooLarge
	}
	return n, nil
}

// Read reads one message from r: the two headers, then what the length says. The buffer grows
// with the bytes that arrive, so a peer that claims 1 MiB and sends less costs what it sent.
func Read(r io.Reader) (Message, []byte, error) {
	var h [HeaderLen + blob.HeaderLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return Message{}, nil, err
	}
	n, err := blobLen(h[HeaderLen:])
	if err != nil {
		return Message{}, nil, err
	}
	buf := bytes.NewBuffer(make([]byte, 0, HeaderLen+min(n, 16<<10)))
	buf.Write(h[:])
	want := int64(n - blob.HeaderLen)
	if got, err := io.CopyN(buf, r, want); err != nil {
		if errors.Is(err, io.EOF) && got < want {
			err = io.ErrUnexpectedEOF
		}
		return Message{}, nil, err
	}
	b := buf.Bytes()
	m, err := Decode(b)
	return m, b, err
}

// Append appends a message with the given header and attributes (body, already padded).
func Append(dst []byte, h Header, body []byte) ([]byte, error) {
	if blob.Pad(blob.HeaderLen+len(body)) > MaxMessage {
		return dst, ErrTooLarge
	}
	dst = append(dst, h.Version, uint8(h.Type))
	dst = binary.BigEndian.AppendUint16(dst, h.Seq)
	dst = binary.BigEndian.AppendUint32(dst, h.Peer)
	dst = binary.BigEndian.AppendUint32(dst, uint32(blob.HeaderLen+len(body)))
	return append(dst, body...), nil
}
