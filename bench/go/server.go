package main

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
)

// The gossip.Gossip service without generated code: the method paths are
// those of Fabric's protos (/gossip.Gossip/GossipStream, /gossip.Gossip/Ping),
// and rawCodec carries the hand-encoded messages.
var gossipService = grpc.ServiceDesc{
	ServiceName: "gossip.Gossip",
	HandlerType: (*interface{})(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Ping",
		Handler: func(_ interface{}, _ context.Context, dec func(interface{}) error, _ grpc.UnaryServerInterceptor) (interface{}, error) {
			var in []byte
			if err := dec(&in); err != nil {
				return nil, err
			}
			return []byte{}, nil // Empty
		},
	}},
	Streams: []grpc.StreamDesc{{
		StreamName:    "GossipStream",
		Handler:       func(srv interface{}, st grpc.ServerStream) error { return srv.(*goServer).serve(st) },
		ServerStreams: true,
		ClientStreams: true,
	}},
	Metadata: "gossip/message.proto",
}

var streamDesc = &gossipService.Streams[0]

const maxMsg = 100 * 1024 * 1024

// hubQueueBound is the bound on a hub stream's send buffer, the same 20
// messages as the grpc-js and raw stacks: beyond it, W7's stall drops.
const hubQueueBound = 20

type goServer struct {
	mode     string
	endpoint string
	received atomic.Int64

	// Hub mode (W7): the streams of the remotes by index, and their acks.
	mu    sync.Mutex
	calls map[uint64]chan []byte
	acks  *replyRouter

	// Relay mode (W8): the stream to C every received Envelope is sent on (set by relayTo).
	relay atomic.Pointer[conn]
}

func startServer(init *initConfig, mode string) (*goServer, error) {
	opts, err := serverCreds(init, "go-server")
	if err != nil {
		return nil, err
	}
	opts = append(opts, grpc.MaxRecvMsgSize(maxMsg), grpc.MaxSendMsgSize(maxMsg))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &goServer{mode: mode, endpoint: lis.Addr().String(), calls: map[uint64]chan []byte{}, acks: newRouter()}
	server := grpc.NewServer(opts...)
	server.RegisterService(&gossipService, s)
	go server.Serve(lis)
	return s, nil
}

// serve is one GossipStream: every Envelope is decoded; data is counted (and
// echoed in echo mode, or sent on to C in relay mode), an `empty` is answered
// with itself (a hub registers the stream of a hello; a relay sends it on and
// answers once C answered it), an ack goes to the hub's waiters.
func (s *goServer) serve(st grpc.ServerStream) error {
	var queue chan []byte
	relay := s.relay.Load()
	for {
		var b []byte
		if err := st.RecvMsg(&b); err != nil {
			return nil
		}
		m, err := decodeEnvelope(b)
		if err != nil {
			return err
		}
		switch m.content {
		case contentData:
			s.received.Add(1)
			if relay != nil {
				// The received Envelope, as received, on C's stream: grpc-go
				// frames it and its loopy writer batches the writes.
				if err := relay.send(b); err != nil {
					return err
				}
			} else if s.mode == "echo" {
				if err := st.SendMsg(dataEnvelope(m.nonce, m.data)); err != nil {
					return nil
				}
			}
		case contentEmpty:
			if relay != nil {
				// A's sync: answered only once C answered it, so that A's run
				// ends when everything reached C (every earlier message is
				// already on C's stream, in order).
				reply := relay.router.expect(m.nonce, 1)
				if err := relay.send(b); err != nil {
					return err
				}
				if err := waitFor(reply, callTimeout, "relayed sync"); err != nil {
					return err
				}
				if err := st.SendMsg(b); err != nil {
					return nil
				}
				continue
			}
			if queue != nil {
				queue <- b
				continue
			}
			if err := st.SendMsg(b); err != nil {
				return nil
			}
			if s.mode == "hub" && m.nonce >= helloBase {
				// From now on one writer goroutine sends on this stream.
				queue = make(chan []byte, hubQueueBound)
				go writer(st, queue)
				s.mu.Lock()
				s.calls[m.nonce-helloBase] = queue
				s.mu.Unlock()
			}
		case contentAck:
			s.acks.deliver(m.nonce)
		}
	}
}

func writer(st grpc.ServerStream, queue <-chan []byte) {
	done := st.Context().Done()
	for {
		select {
		case b := <-queue:
			if st.SendMsg(b) != nil {
				return
			}
		case <-done:
			return
		}
	}
}

func serverRole(init *initConfig) (*spec, error) {
	s, err := startServer(init, init.Opts.str("mode"))
	if err != nil {
		return nil, err
	}
	data := payloadBytes(int(init.Opts.num("hubSize", 1024)))
	var seq atomic.Uint64
	seq.Store(1)
	queueOf := func(id string) (chan []byte, error) {
		n, err := strconv.ParseUint(id, 10, 64)
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		q := s.calls[n]
		if q == nil {
			return nil, fmt.Errorf("no stream from remote %s", id)
		}
		return q, nil
	}
	return &spec{
		info: map[string]string{"endpoint": s.endpoint, "pkiId": ""},
		handlers: map[string]handler{
			"received": func(args) (interface{}, error) { return s.received.Load(), nil },
			"relayTo": func(a args) (interface{}, error) {
				// Connect first (one sync answered by the target), then relay.
				creds, err := clientCreds(init, "go-relay", 1)
				if err != nil {
					return nil, err
				}
				c, err := openConn(a.str("endpoint"), creds[0], nil)
				if err != nil {
					return nil, err
				}
				if err := c.roundTrip(syncBase - 1); err != nil {
					c.close()
					return nil, err
				}
				s.relay.Store(c)
				return true, nil
			},
			"waitConns": func(a args) (interface{}, error) {
				n := int(a.num("n"))
				end := time.Now().Add(time.Duration(a.num("seconds", 60) * float64(time.Second)))
				for {
					s.mu.Lock()
					have := len(s.calls)
					s.mu.Unlock()
					if have >= n || time.Now().After(end) {
						return have, nil
					}
					time.Sleep(20 * time.Millisecond)
				}
			},
			"ackRound": func(a args) (interface{}, error) {
				ids := a.strs("ids")
				queues := make([]chan []byte, len(ids))
				for i, id := range ids {
					q, err := queueOf(id)
					if err != nil {
						return nil, err
					}
					queues[i] = q
				}
				lat, err := timedLoop(int(a.num("count")), a.num("seconds"), func(int) error {
					nonce := seq.Add(1)
					acked := s.acks.expect(nonce, len(queues))
					env := dataEnvelope(nonce, data)
					for _, q := range queues {
						q <- env
					}
					return waitFor(acked, 5*time.Second, "acks")
				})
				if err != nil {
					return nil, err
				}
				return latencyJSON(lat), nil
			},
			"stall": func(a args) (interface{}, error) {
				q, err := queueOf(a.str("id"))
				if err != nil {
					return nil, err
				}
				batch := int(a.num("batch"))
				sent, dropped := 0, 0
				samples := sampleRSS(a.num("seconds"), a.num("sampleMs", 1000), a.num("tickMs", 10), func() {
					for i := 0; i < batch; i++ {
						// The application produces the message either way; the
						// bounded send buffer drops it when full, as gossip does.
						env := dataEnvelope(seq.Add(1), data)
						select {
						case q <- env:
							sent++
						default:
							dropped++
						}
					}
				})
				return map[string]interface{}{"samples": samples, "sent": sent, "dropped": dropped}, nil
			},
		},
	}, nil
}

type rssSample struct {
	T        int64 `json:"t"`
	RSS      int64 `json:"rss"`
	HeapUsed int64 `json:"heapUsed"`
}

// sampleRSS calls tick every tickMs and samples memory every everyMs, for seconds.
func sampleRSS(seconds, everyMs, tickMs float64, tick func()) []rssSample {
	t0 := time.Now()
	var samples []rssSample
	take := func() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		samples = append(samples, rssSample{T: time.Since(t0).Milliseconds(), RSS: rss(), HeapUsed: int64(ms.HeapAlloc)})
	}
	take()
	ticker := time.NewTicker(time.Duration(tickMs * float64(time.Millisecond)))
	sampler := time.NewTicker(time.Duration(everyMs * float64(time.Millisecond)))
	end := time.NewTimer(time.Duration(seconds * float64(time.Second)))
	defer ticker.Stop()
	defer sampler.Stop()
	for {
		select {
		case <-ticker.C:
			tick()
		case <-sampler.C:
			take()
		case <-end.C:
			take()
			return samples
		}
	}
}
