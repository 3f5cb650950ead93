package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"math/big"
	"net"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// --- certificates ---------------------------------------------------------------

// benchCA is the run's CA (BENCH_INIT.ca), which issues every certificate,
// as createPeerMaterial does for the TypeScript stacks.
type benchCA struct {
	cert *x509.Certificate
	key  interface{}
	pool *x509.CertPool
}

func loadCA(init *initConfig) (*benchCA, error) {
	cb, _ := pem.Decode([]byte(init.CA.CertPem))
	kb, _ := pem.Decode([]byte(init.CA.KeyPem))
	if cb == nil || kb == nil {
		return nil, errors.New("bad CA PEM")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, err
	}
	key, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &benchCA{cert: cert, key: key, pool: pool}, nil
}

// issue creates an ECDSA P-256 TLS pair for server and client use, with the
// SANs of createPeerMaterial (localhost, 127.0.0.1, ::1).
func (ca *benchCA) issue(name string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name, Organization: []string{"BenchMSP"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyAgreement,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

func serverCreds(init *initConfig, name string) ([]grpc.ServerOption, error) {
	if !init.TLS {
		return nil, nil
	}
	ca, err := loadCA(init)
	if err != nil {
		return nil, err
	}
	pair, err := ca.issue(name)
	if err != nil {
		return nil, err
	}
	return []grpc.ServerOption{grpc.Creds(credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{pair},
		ClientCAs:    ca.pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}))}, nil
}

// clientCreds returns `count` dial options, each with its own client certificate.
func clientCreds(init *initConfig, name string, count int) ([]grpc.DialOption, error) {
	out := make([]grpc.DialOption, count)
	if !init.TLS {
		for i := range out {
			out[i] = grpc.WithInsecure()
		}
		return out, nil
	}
	ca, err := loadCA(init)
	if err != nil {
		return nil, err
	}
	for i := range out {
		pair, err := ca.issue(fmt.Sprintf("%s-%d", name, i))
		if err != nil {
			return nil, err
		}
		out[i] = grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
			Certificates: []tls.Certificate{pair},
			RootCAs:      ca.pool,
		}))
	}
	return out, nil
}

// --- timing ------------------------------------------------------------------------

func wallNow() float64 { return float64(time.Now().UnixNano()) / 1e6 }

func sinceUs(t0 time.Time) float64 { return float64(time.Since(t0).Nanoseconds()) / 1e3 }

func round1(x float64) float64 { return math.Round(x*10) / 10 }

// latencyJSON summarizes latencies in us like util.ts's latencyJson.
func latencyJSON(samples []float64) map[string]interface{} {
	if len(samples) == 0 {
		return map[string]interface{}{"n": 0, "p50": nil, "p99": nil, "mean": nil, "min": nil, "max": nil}
	}
	s := append([]float64(nil), samples...)
	sort.Float64s(s)
	q := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(s)))) - 1
		if i < 0 {
			i = 0
		}
		if i > len(s)-1 {
			i = len(s) - 1
		}
		return s[i]
	}
	sum := 0.0
	for _, v := range s {
		sum += v
	}
	return map[string]interface{}{
		"n": len(s), "p50": round1(q(0.5)), "p99": round1(q(0.99)), "mean": round1(sum / float64(len(s))),
		"min": round1(s[0]), "max": round1(s[len(s)-1]),
	}
}

// timedLoop runs fn sequentially up to count times or until seconds passed; latencies in us.
func timedLoop(count int, seconds float64, fn func(i int) error) ([]float64, error) {
	out := make([]float64, 0, count)
	end := time.Now().Add(time.Duration(seconds * float64(time.Second)))
	for i := 0; i < count; i++ {
		t0 := time.Now()
		if err := fn(i); err != nil {
			return nil, err
		}
		out = append(out, sinceUs(t0))
		if !time.Now().Before(end) {
			break
		}
	}
	return out, nil
}

// pool maps items with at most limit calls of fn in flight.
func pool(n, limit int, fn func(i int) error) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	next := 0
	for l := 0; l < limit && l < n; l++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				stop := i >= n || first != nil
				mu.Unlock()
				if stop {
					return
				}
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// replyRouter tracks replies by nonce: expect(nonce, n) is closed after n deliveries.
type replyRouter struct {
	mu      sync.Mutex
	waiters map[uint64]*waiter
}

type waiter struct {
	left int
	done chan struct{}
}

func newRouter() *replyRouter { return &replyRouter{waiters: map[uint64]*waiter{}} }

func (r *replyRouter) expect(nonce uint64, count int) <-chan struct{} {
	w := &waiter{left: count, done: make(chan struct{})}
	r.mu.Lock()
	r.waiters[nonce] = w
	r.mu.Unlock()
	return w.done
}

func (r *replyRouter) deliver(nonce uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.waiters[nonce]
	if w == nil {
		return
	}
	w.left--
	if w.left <= 0 {
		delete(r.waiters, nonce)
		close(w.done)
	}
}

func waitFor(ch <-chan struct{}, d time.Duration, what string) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
		return nil
	case <-t.C:
		return fmt.Errorf("timed out after %v: %s", d, what)
	}
}
