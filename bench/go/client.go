package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
)

const callTimeout = 20 * time.Second

func dial(endpoint string, creds grpc.DialOption) (*grpc.ClientConn, error) {
	return grpc.Dial(endpoint, creds, grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsg), grpc.MaxCallSendMsgSize(maxMsg)))
}

// conn is a ClientConn (one HTTP/2 connection) with one GossipStream; a
// goroutine reads the stream, routing `empty` answers by nonce and handing
// other messages to onData.
type conn struct {
	cc      *grpc.ClientConn
	st      grpc.ClientStream
	cancel  context.CancelFunc
	router  *replyRouter
	sendMu  sync.Mutex
	stalled atomic.Bool
	closed  chan struct{}
}

func openConn(endpoint string, creds grpc.DialOption, onData func(*conn, gossipMessage)) (*conn, error) {
	cc, err := dial(endpoint, creds)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	st, err := cc.NewStream(ctx, streamDesc, "/gossip.Gossip/GossipStream")
	if err != nil {
		cancel()
		cc.Close()
		return nil, err
	}
	c := &conn{cc: cc, st: st, cancel: cancel, router: newRouter(), closed: make(chan struct{})}
	go c.read(onData)
	return c, nil
}

func (c *conn) read(onData func(*conn, gossipMessage)) {
	for {
		var b []byte
		if c.st.RecvMsg(&b) != nil {
			return
		}
		if c.stalled.Load() {
			// A stalled reader: stop reading; flow control pushes back on the sender.
			<-c.closed
			return
		}
		m, err := decodeEnvelope(b)
		if err != nil {
			continue
		}
		if onData != nil && m.content != contentEmpty {
			onData(c, m)
		} else {
			c.router.deliver(m.nonce)
		}
	}
}

func (c *conn) send(b []byte) error {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	return c.st.SendMsg(b)
}

func (c *conn) roundTrip(nonce uint64) error {
	reply := c.router.expect(nonce, 1)
	if err := c.send(controlEnvelope(nonce, contentEmpty)); err != nil {
		return err
	}
	return waitFor(reply, callTimeout, "round trip")
}

func (c *conn) close() {
	close(c.closed)
	c.cancel()
	c.cc.Close()
}

func ping(cc *grpc.ClientConn) error {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	var out []byte
	return cc.Invoke(ctx, "/gossip.Gossip/Ping", []byte{}, &out)
}

func cpuUs() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Sec*1e6 + ru.Utime.Usec + ru.Stime.Sec*1e6 + ru.Stime.Usec
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

func clientRole(init *initConfig) (*spec, error) {
	credList, err := clientCreds(init, "go-client", 1)
	if err != nil {
		return nil, err
	}
	creds := credList[0]
	var c *conn
	var pinger *grpc.ClientConn
	var seq atomic.Uint64
	seq.Store(1)
	var syncSeq atomic.Uint64
	syncSeq.Store(syncBase)
	notConnected := errors.New("not connected")
	return &spec{
		info: map[string]int{"pid": syscall.Getpid()},
		handlers: map[string]handler{
			"connect": func(a args) (interface{}, error) {
				var err error
				if c, err = openConn(a.str("endpoint"), creds, nil); err != nil {
					return nil, err
				}
				return true, c.roundTrip(syncSeq.Add(1))
			},
			"stream": func(a args) (interface{}, error) {
				if c == nil {
					return nil, notConnected
				}
				data := payloadBytes(int(a.num("size")))
				maxCount := int(a.num("maxCount", 1e9))
				cpu0 := cpuUs()
				t0 := time.Now()
				end := t0.Add(time.Duration(a.num("seconds") * float64(time.Second)))
				count := 0
				for {
					// Send blocks on HTTP/2 flow control: the stream's back-pressure.
					if err := c.send(dataEnvelope(seq.Add(1), data)); err != nil {
						return nil, err
					}
					count++
					if count&31 == 0 && (count >= maxCount || !time.Now().Before(end)) {
						break
					}
				}
				if err := c.roundTrip(syncSeq.Add(1)); err != nil {
					return nil, err
				}
				return map[string]interface{}{"count": count, "ms": ms(time.Since(t0)), "cpuUs": cpuUs() - cpu0}, nil
			},
			"echo": func(a args) (interface{}, error) {
				if c == nil {
					return nil, notConnected
				}
				data := payloadBytes(int(a.num("size")))
				lat, err := timedLoop(int(a.num("count")), a.num("seconds"), func(int) error {
					nonce := seq.Add(1)
					reply := c.router.expect(nonce, 1)
					if err := c.send(dataEnvelope(nonce, data)); err != nil {
						return err
					}
					return waitFor(reply, callTimeout, "echo")
				})
				if err != nil {
					return nil, err
				}
				return latencyJSON(lat), nil
			},
			"pingConnect": func(a args) (interface{}, error) {
				var err error
				if pinger, err = dial(a.str("endpoint"), creds); err != nil {
					return nil, err
				}
				return true, ping(pinger)
			},
			"ping": func(a args) (interface{}, error) {
				if pinger == nil {
					return nil, notConnected
				}
				lat, err := timedLoop(int(a.num("count")), a.num("seconds"), func(int) error { return ping(pinger) })
				if err != nil {
					return nil, err
				}
				return latencyJSON(lat), nil
			},
			"pingLoad": func(a args) (interface{}, error) {
				if pinger == nil {
					return nil, notConnected
				}
				inflight := int(a.num("inflight"))
				maxCount := int64(a.num("maxCount", 1e9))
				t0 := time.Now()
				end := t0.Add(time.Duration(a.num("seconds") * float64(time.Second)))
				var count atomic.Int64
				var wg sync.WaitGroup
				errs := make(chan error, inflight)
				for l := 0; l < inflight; l++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for time.Now().Before(end) && count.Load() < maxCount {
							if err := ping(pinger); err != nil {
								errs <- err
								return
							}
							count.Add(1)
						}
					}()
				}
				wg.Wait()
				select {
				case err := <-errs:
					return nil, err
				default:
				}
				elapsed := ms(time.Since(t0))
				return map[string]interface{}{"count": count.Load(), "ms": elapsed, "perSecond": float64(count.Load()) / elapsed * 1000}, nil
			},
			"probe": func(a args) (interface{}, error) {
				endpoint := a.str("endpoint")
				lat, err := timedLoop(int(a.num("count")), a.num("seconds"), func(int) error {
					cc, err := dial(endpoint, creds)
					if err != nil {
						return err
					}
					defer cc.Close()
					return ping(cc)
				})
				if err != nil {
					return nil, err
				}
				return latencyJSON(lat), nil
			},
			"setup": func(a args) (interface{}, error) {
				endpoint := a.str("endpoint")
				lat, err := timedLoop(int(a.num("count")), a.num("seconds"), func(int) error {
					c, err := openConn(endpoint, creds, nil)
					if err != nil {
						return err
					}
					defer c.close()
					return c.roundTrip(syncSeq.Add(1))
				})
				if err != nil {
					return nil, err
				}
				return latencyJSON(lat), nil
			},
		},
	}, nil
}

// stormRole: `count` peers, each with its own certificate, connect at once (W6).
func stormRole(init *initConfig) (*spec, error) {
	count := int(init.Opts.num("count"))
	creds, err := clientCreds(init, "go-storm", count)
	if err != nil {
		return nil, err
	}
	var syncSeq atomic.Uint64
	syncSeq.Store(syncBase)
	return &spec{
		info: map[string]int{"count": count},
		handlers: map[string]handler{
			"storm": func(a args) (interface{}, error) {
				endpoint := a.str("endpoint")
				if wait := a.num("at") - wallNow(); wait > 0 {
					time.Sleep(time.Duration(wait * float64(time.Millisecond)))
				}
				start := wallNow()
				lat := make([]float64, count)
				errs := make([]error, count)
				var wg sync.WaitGroup
				for i := range creds {
					wg.Add(1)
					go func(i int) {
						defer wg.Done()
						t0 := time.Now()
						c, err := openConn(endpoint, creds[i], nil)
						if err == nil {
							err = c.roundTrip(syncSeq.Add(1))
							lat[i] = sinceUs(t0)
							c.close()
						}
						errs[i] = err
					}(i)
				}
				wg.Wait()
				for _, err := range errs {
					if err != nil {
						return nil, err
					}
				}
				return map[string]interface{}{"latencies": lat, "start": start, "end": wallNow()}, nil
			},
		},
	}, nil
}

// remotesRole hosts W7's remote peers: each dials the hub, says hello with its
// index, acks data messages when asked to, and can stop reading (stall).
func remotesRole(init *initConfig) (*spec, error) {
	credList, err := clientCreds(init, "go-remote", 1)
	if err != nil {
		return nil, err
	}
	creds := credList[0]
	var mu sync.Mutex
	conns := map[int]*conn{}
	return &spec{
		info: map[string]int{"count": int(init.Opts.num("count"))},
		handlers: map[string]handler{
			"connect": func(a args) (interface{}, error) {
				endpoint := a.str("endpoint")
				ack := map[int]bool{}
				for _, i := range a.nums("ack") {
					ack[int(i)] = true
				}
				indices := a.nums("indices")
				err := pool(len(indices), 16, func(k int) error {
					index := int(indices[k])
					c, err := openConn(endpoint, creds, func(c *conn, m gossipMessage) {
						if m.content == contentData && ack[index] {
							c.send(controlEnvelope(m.nonce, contentAck))
						}
					})
					if err != nil {
						return err
					}
					mu.Lock()
					conns[index] = c
					mu.Unlock()
					return c.roundTrip(helloBase + uint64(index))
				})
				if err != nil {
					return nil, err
				}
				out := make([]map[string]interface{}, len(indices))
				for k, i := range indices {
					out[k] = map[string]interface{}{"index": int(i), "id": fmt.Sprint(int(i))}
				}
				return out, nil
			},
			"stall": func(a args) (interface{}, error) {
				mu.Lock()
				c := conns[int(a.num("index"))]
				mu.Unlock()
				if c == nil {
					return nil, errors.New("no such remote")
				}
				c.stalled.Store(true)
				return true, nil
			},
		},
	}, nil
}
