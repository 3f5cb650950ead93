// Command gossip-bench-go is stack (e) of `npm run bench`: grpc-go serving and
// dialing the gossip.Gossip service (GossipStream and Ping) with mutual TLS,
// driven by bench/run.mjs exactly like the TypeScript workers.
//
// It is started by the orchestrator with a Node IPC channel (NODE_CHANNEL_FD,
// JSON lines) and BENCH_INIT, announces itself with {t:"ready", info},
// answers {t:"call", id, cmd, args} with {t:"reply", id, ok, value|error},
// and exits on {t:"exit"} or when the channel closes (the orchestrator is
// gone). See bench/workers/common/ipc.ts for the protocol.
//
// It is built offline from Debian's packages (golang-go,
// golang-google-grpc-dev) in GOPATH mode; see bench/README.md.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"syscall"
)

// initConfig is BENCH_INIT.
type initConfig struct {
	Stack string `json:"stack"`
	Role  string `json:"role"`
	TLS   bool   `json:"tls"`
	CA    struct {
		CertPem string `json:"certPem"`
		KeyPem  string `json:"keyPem"`
	} `json:"ca"`
	Opts args `json:"opts"`
}

// handler answers one orchestrator command.
type handler func(a args) (interface{}, error)

// spec is what a role announces and the commands it answers.
type spec struct {
	info     interface{}
	handlers map[string]handler
}

type ipc struct {
	mu sync.Mutex
	w  *bufio.Writer
}

func (c *ipc) send(m interface{}) {
	b, err := json.Marshal(m)
	if err != nil {
		b, _ = json.Marshal(map[string]interface{}{"t": "log", "error": err.Error()})
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.w.Write(b)
	c.w.WriteByte('\n')
	if err := c.w.Flush(); err != nil {
		os.Exit(3)
	}
}

func fail(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "bench go worker %d: "+format+"\n", append([]interface{}{os.Getpid()}, a...)...)
	os.Exit(5)
}

func main() {
	fdText := os.Getenv("NODE_CHANNEL_FD")
	fd, err := strconv.Atoi(fdText)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench go worker: must be started by bench/run.mjs (no NODE_CHANNEL_FD)")
		os.Exit(2)
	}
	var init initConfig
	if err := json.Unmarshal([]byte(os.Getenv("BENCH_INIT")), &init); err != nil {
		fail("bad BENCH_INIT: %v", err)
	}
	channel := os.NewFile(uintptr(fd), "ipc")
	c := &ipc{w: bufio.NewWriter(channel)}

	var s *spec
	switch init.Role {
	case "server":
		s, err = serverRole(&init)
	case "client":
		s, err = clientRole(&init)
	case "storm":
		s, err = stormRole(&init)
	case "remotes":
		s, err = remotesRole(&init)
	default:
		err = fmt.Errorf("role %q is not implemented by the Go stack", init.Role)
	}
	if err != nil {
		fail("failed to start %s: %v", init.Role, err)
	}
	s.handlers["cpu"] = func(args) (interface{}, error) {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			return nil, err
		}
		us := func(t syscall.Timeval) int64 { return t.Sec*1e6 + t.Usec }
		return map[string]int64{"user": us(ru.Utime), "system": us(ru.Stime)}, nil
	}
	s.handlers["mem"] = func(a args) (interface{}, error) { return memory(a.boolean("gc", false)), nil }

	c.send(map[string]interface{}{"t": "ready", "info": s.info})
	scanner := bufio.NewScanner(channel)
	scanner.Buffer(make([]byte, 64*1024), 64*1024*1024)
	for scanner.Scan() {
		var m struct {
			T    string `json:"t"`
			ID   int64  `json:"id"`
			Cmd  string `json:"cmd"`
			Args args   `json:"args"`
		}
		if json.Unmarshal(scanner.Bytes(), &m) != nil {
			continue
		}
		if m.T == "exit" {
			os.Exit(0)
		}
		if m.T != "call" {
			continue
		}
		h, ok := s.handlers[m.Cmd]
		if !ok {
			c.send(map[string]interface{}{"t": "reply", "id": m.ID, "ok": false, "error": "unknown command " + m.Cmd})
			continue
		}
		go func(id int64, h handler, a args) {
			v, err := call(h, a)
			if err != nil {
				c.send(map[string]interface{}{"t": "reply", "id": id, "ok": false, "error": err.Error()})
			} else {
				c.send(map[string]interface{}{"t": "reply", "id": id, "ok": true, "value": v})
			}
		}(m.ID, h, m.Args)
	}
	// The orchestrator is gone: do not linger.
	os.Exit(3)
}

// call runs a handler, turning a panic (a bad argument) into an error reply.
func call(h handler, a args) (v interface{}, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	return h(a)
}

// memStats mirrors process.memoryUsage(): rss from the kernel, heap from the Go runtime.
type memStats struct {
	RSS          int64 `json:"rss"`
	HeapUsed     int64 `json:"heapUsed"`
	HeapTotal    int64 `json:"heapTotal"`
	External     int64 `json:"external"`
	ArrayBuffers int64 `json:"arrayBuffers"`
}

// memory measures the process, after a full collection (whose freed pages go
// back to the OS, as V8's do after gc()) when gc is true.
func memory(gc bool) memStats {
	if gc {
		runtime.GC()
		debug.FreeOSMemory()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memStats{RSS: rss(), HeapUsed: int64(ms.HeapAlloc), HeapTotal: int64(ms.HeapSys)}
}

func rss() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	var size, resident int64
	fmt.Sscan(string(b), &size, &resident)
	return resident * int64(os.Getpagesize())
}

// args is a JSON object of arguments, with typed access like ipc.ts's Args.
type args map[string]interface{}

func (a args) num(key string, fallback ...float64) float64 {
	if v, ok := a[key].(float64); ok {
		return v
	}
	if len(fallback) > 0 {
		return fallback[0]
	}
	panic(fmt.Sprintf("argument %s must be a number, got %v", key, a[key]))
}

func (a args) str(key string) string {
	if v, ok := a[key].(string); ok {
		return v
	}
	panic(fmt.Sprintf("argument %s must be a string, got %v", key, a[key]))
}

func (a args) boolean(key string, fallback bool) bool {
	if v, ok := a[key].(bool); ok {
		return v
	}
	return fallback
}

func (a args) nums(key string) []float64 {
	list, _ := a[key].([]interface{})
	out := make([]float64, 0, len(list))
	for _, x := range list {
		if f, ok := x.(float64); ok {
			out = append(out, f)
		}
	}
	return out
}

func (a args) strs(key string) []string {
	list, _ := a[key].([]interface{})
	out := make([]string, 0, len(list))
	for _, x := range list {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}
