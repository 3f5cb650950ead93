package main

import (
	"errors"

	"google.golang.org/grpc/encoding"
)

// The benchmark's messages (bench/workers/common/wire.ts), byte for byte:
//
//	GossipMessage { nonce: seq, channel: "benchchannel", tag: CHAN_AND_ORG,
//	                data_msg: DataMessage { payload: Payload { seq_num: seq, data: <size bytes> } } }
//
// in an unsigned Envelope. Go has no generated types here: each message is
// encoded by hand for each send (as protobuf-es or google-protobuf would
// produce it) and every received Envelope is decoded down to its
// GossipMessage fields, as a Fabric-style peer would.

const (
	syncBase  = uint64(1) << 40
	helloBase = uint64(1) << 41

	tagChanAndOrg = 4
	contentData   = 8
	contentEmpty  = 13
	contentAck    = 22
)

var channelName = []byte("benchchannel")

// rawCodec replaces grpc-go's "proto" codec: messages are []byte frames that
// this program encodes and decodes itself, so no generated code is needed.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v interface{}) ([]byte, error) {
	switch m := v.(type) {
	case []byte:
		return m, nil
	case *[]byte:
		return *m, nil
	}
	return nil, errors.New("rawCodec: not a []byte")
}

func (rawCodec) Unmarshal(data []byte, v interface{}) error {
	p, ok := v.(*[]byte)
	if !ok {
		return errors.New("rawCodec: not a *[]byte")
	}
	// grpc-go allocates a fresh buffer per received message: keeping it is safe.
	*p = data
	return nil
}

func init() {
	encoding.RegisterCodec(rawCodec{})
}

func varintLen(n uint64) int {
	l := 1
	for n >= 0x80 {
		n >>= 7
		l++
	}
	return l
}

func putVarint(b []byte, n uint64) []byte {
	for n >= 0x80 {
		b = append(b, byte(n)|0x80)
		n >>= 7
	}
	return append(b, byte(n))
}

func putBytes(b []byte, field int, v []byte) []byte {
	b = putVarint(b, uint64(field<<3|2))
	b = putVarint(b, uint64(len(v)))
	return append(b, v...)
}

// dataEnvelope encodes Envelope{payload: GossipMessage{data message seq}}.
func dataEnvelope(seq uint64, data []byte) []byte {
	payload := 1 + varintLen(seq) + 1 + varintLen(uint64(len(data))) + len(data)
	dm := 1 + varintLen(uint64(payload)) + payload
	gm := 1 + varintLen(seq) + 1 + varintLen(uint64(len(channelName))) + len(channelName) + 2 + 1 + varintLen(uint64(dm)) + dm
	b := make([]byte, 0, 1+varintLen(uint64(gm))+gm)
	b = append(b, 0x0a) // Envelope.payload
	b = putVarint(b, uint64(gm))
	b = append(b, 0x08) // nonce
	b = putVarint(b, seq)
	b = putBytes(b, 2, channelName)
	b = append(b, 0x18, tagChanAndOrg)
	b = append(b, 0x42) // data_msg
	b = putVarint(b, uint64(dm))
	b = append(b, 0x0a) // DataMessage.payload
	b = putVarint(b, uint64(payload))
	b = append(b, 0x08) // seq_num
	b = putVarint(b, seq)
	return putBytes(b, 2, data)
}

// controlEnvelope encodes Envelope{payload: GossipMessage{nonce, <content> = {}}}.
func controlEnvelope(nonce uint64, content int) []byte {
	key := uint64(content<<3 | 2)
	gm := 1 + varintLen(nonce) + varintLen(key) + 1
	b := make([]byte, 0, 1+varintLen(uint64(gm))+gm)
	b = append(b, 0x0a)
	b = putVarint(b, uint64(gm))
	b = append(b, 0x08)
	b = putVarint(b, nonce)
	b = putVarint(b, key)
	return append(b, 0)
}

// gossipMessage holds the decoded fields the benchmark uses.
type gossipMessage struct {
	nonce   uint64
	channel []byte
	tag     uint64
	content int
	seqNum  uint64
	data    []byte
}

var errMalformed = errors.New("malformed message")

// field reads one protobuf field: number, wire type, varint value or bytes.
func field(b []byte) (num int, typ int, v uint64, bytes []byte, rest []byte, err error) {
	key, n := varint(b)
	if n == 0 {
		return 0, 0, 0, nil, nil, errMalformed
	}
	b = b[n:]
	num, typ = int(key>>3), int(key&7)
	switch typ {
	case 0:
		v, n = varint(b)
		if n == 0 {
			return 0, 0, 0, nil, nil, errMalformed
		}
		return num, typ, v, nil, b[n:], nil
	case 2:
		l, n := varint(b)
		if n == 0 || uint64(len(b)-n) < l {
			return 0, 0, 0, nil, nil, errMalformed
		}
		return num, typ, 0, b[n : n+int(l)], b[n+int(l):], nil
	case 1:
		if len(b) < 8 {
			return 0, 0, 0, nil, nil, errMalformed
		}
		return num, typ, 0, nil, b[8:], nil
	case 5:
		if len(b) < 4 {
			return 0, 0, 0, nil, nil, errMalformed
		}
		return num, typ, 0, nil, b[4:], nil
	}
	return 0, 0, 0, nil, nil, errMalformed
}

func varint(b []byte) (uint64, int) {
	var v uint64
	for i := 0; i < len(b) && i < 10; i++ {
		v |= uint64(b[i]&0x7f) << (7 * uint(i))
		if b[i] < 0x80 {
			return v, i + 1
		}
	}
	return 0, 0
}

// submessage returns the bytes of field `want` of message b (the last one wins, as in protobuf).
func submessage(b []byte, want int) ([]byte, error) {
	var out []byte
	for len(b) > 0 {
		num, typ, _, bytes, rest, err := field(b)
		if err != nil {
			return nil, err
		}
		if num == want && typ == 2 {
			out = bytes
		}
		b = rest
	}
	return out, nil
}

// decodeEnvelope decodes an Envelope and its GossipMessage.
func decodeEnvelope(env []byte) (gossipMessage, error) {
	var m gossipMessage
	gm, err := submessage(env, 1)
	if err != nil {
		return m, err
	}
	for len(gm) > 0 {
		num, typ, v, bytes, rest, err := field(gm)
		if err != nil {
			return m, err
		}
		switch {
		case num == 1 && typ == 0:
			m.nonce = v
		case num == 2 && typ == 2:
			m.channel = bytes
		case num == 3 && typ == 0:
			m.tag = v
		case num >= 5 && typ == 2:
			m.content = num
			if num == contentData {
				payload, err := submessage(bytes, 1)
				if err != nil {
					return m, err
				}
				for len(payload) > 0 {
					pn, pt, pv, pb, prest, err := field(payload)
					if err != nil {
						return m, err
					}
					if pn == 1 && pt == 0 {
						m.seqNum = pv
					} else if pn == 2 && pt == 2 {
						m.data = pb
					}
					payload = prest
				}
			}
		}
		gm = rest
	}
	return m, nil
}

// payloadBytes is the data of a message of `size` bytes (the same bytes as util.ts).
func payloadBytes(size int) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte((i*131 + 7) & 0xff)
	}
	return b
}
