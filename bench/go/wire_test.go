package main

import (
	"bytes"
	"encoding/hex"
	"testing"
)

// The expected bytes come from bench/workers/common/wire.ts (dataFrame and
// controlFrame without the 5-byte gRPC header), so that stack e provably
// sends what the other stacks send.
func TestEncodingMatchesWireTs(t *testing.T) {
	cases := []struct {
		name string
		got  []byte
		want string
	}{
		{"data 100000/16", dataEnvelope(100000, payloadBytes(16)), "0a2e08a08d06120c62656e63686368616e6e656c180442180a1608a08d061210078a0d901396199c1fa225a82bae31b4"},
		{"sync", controlEnvelope(syncBase+1, contentEmpty), "0a09088180808080206a00"},
		{"ack", controlEnvelope(helloBase+7, contentAck), "0a0a08878080808040b20100"},
	}
	for _, c := range cases {
		if hex.EncodeToString(c.got) != c.want {
			t.Errorf("%s: got %x, want %s", c.name, c.got, c.want)
		}
	}
	// Wire sizes quoted by bench/README.md (gRPC frame = 5 + Envelope).
	if n := 5 + len(dataEnvelope(100000, payloadBytes(1024))); n != 1065 {
		t.Errorf("1 KiB frame: %d bytes, want 1065", n)
	}
	if n := 5 + len(dataEnvelope(100000, payloadBytes(64))); n != 101 {
		t.Errorf("64 B frame: %d bytes, want 101", n)
	}
}

func TestDecodeEnvelope(t *testing.T) {
	data := payloadBytes(1024)
	m, err := decodeEnvelope(dataEnvelope(300, data))
	if err != nil {
		t.Fatal(err)
	}
	if m.nonce != 300 || m.seqNum != 300 || m.content != contentData || m.tag != tagChanAndOrg || string(m.channel) != "benchchannel" || !bytes.Equal(m.data, data) {
		t.Errorf("decoded %+v", m)
	}
	m, err = decodeEnvelope(controlEnvelope(helloBase+3, contentEmpty))
	if err != nil || m.nonce != helloBase+3 || m.content != contentEmpty {
		t.Errorf("control: %+v %v", m, err)
	}
	env := dataEnvelope(5, data)
	for _, cut := range []int{1, 2, 10, len(env) - 1} {
		if _, err := decodeEnvelope(env[:cut]); err == nil {
			t.Errorf("truncated at %d: no error", cut)
		}
	}
}
