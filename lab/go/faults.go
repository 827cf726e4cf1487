package main

// The fault switch and the mechanics that need more than a branch in the handler: the gated,
// small-backlog listener (listen-overflow), the lock that never comes back (close-wait), the
// loopback NXDOMAIN responder (dns) and the socket-churn noise process.

import (
	"fmt"
	"math/rand"
	"net"
	"net/http"
	_ "net/http/pprof" // goroutine pages on the admin listener
	"os"
	"sort"
	"strings"
	"syscall"
	"time"
)

// faultKinds names every fault and where it lives.
var faultKinds = map[string]string{
	"none":            "no fault",
	"eof":             "callee: closes each connection without a response",
	"reset":           "callee: resets each connection (SO_LINGER 0) without a response",
	"slow":            "callee: stalls each request past its callers' timeout",
	"close-wait":      "callee: a lock is never released; hung requests hold their connections in CLOSE_WAIT until the open-file limit",
	"time-wait":       "caller: a new connection per downstream call (keep-alives off)",
	"goroutine-leak":  "service: each request leaks goroutines blocked on a channel nobody reads",
	"panic":           "service: each request panics (index out of range), recovered and logged with its stack",
	"dns":             "caller: its downstream name is a .invalid name that no resolver knows",
	"listen-overflow": "callee: stops accepting; its small listen backlog fills and overflows",
}

func knownFaults() string {
	names := make([]string, 0, len(faultKinds))
	for k := range faultKinds {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// faultSwitch: POST /fault?kind=NAME switches the fault; GET /fault tells the current one.
func (s *service) faultSwitch(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		kind := r.URL.Query().Get("kind")
		if _, ok := faultKinds[kind]; !ok {
			http.Error(w, fmt.Sprintf("unknown fault %q (known: %s)\n", kind, knownFaults()), http.StatusBadRequest)
			return
		}
		s.setFault(kind)
	}
	fmt.Fprintf(w, "%s\n", s.faultNow())
}

// setFault switches faults, starting and stopping what a fault needs beyond a handler branch.
// It reports on stderr, never in the service's log: the agent must find the fault from its
// effects alone.
func (s *service) setFault(kind string) {
	before := s.faultNow()
	if before == kind {
		return
	}
	if before == "close-wait" {
		close(s.release)
	}
	s.fault.Store(kind)
	switch kind {
	case "close-wait":
		s.release = make(chan struct{})
		held := make(chan struct{})
		go func(release chan struct{}) {
			s.cache.Lock()
			close(held)
			<-release
			s.cache.Unlock()
		}(s.release)
		<-held
	case "listen-overflow":
		// Connections already open would go on serving; closing the idle ones sends every
		// caller to the listener that no longer accepts.
		s.srv.SetKeepAlivesEnabled(false)
	}
	if before == "listen-overflow" {
		s.srv.SetKeepAlivesEnabled(true)
	}
	if kind == "time-wait" || before == "time-wait" {
		s.keepAlive.CloseIdleConnections()
	}
	fmt.Fprintf(os.Stderr, "labsvc %s: fault %s -> %s\n", s.cfg.name, before, kind)
}

// gatedListener stops handing out connections while the listen-overflow fault is on; the
// kernel keeps completing handshakes into the backlog until it is full, then drops.
type gatedListener struct {
	net.Listener
	s *service
}

func (g *gatedListener) Accept() (net.Conn, error) {
	for g.s.faultNow() == "listen-overflow" {
		time.Sleep(20 * time.Millisecond)
	}
	return g.Listener.Accept()
}

// listenBacklog opens an IPv4 TCP listener with an explicit backlog: net.Listen always uses
// net.core.somaxconn, far too deep for an overflow within seconds.
func listenBacklog(addr string, backlog int) (net.Listener, error) {
	tcpAddr, err := net.ResolveTCPAddr("tcp4", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	sa := &syscall.SockaddrInet4{Port: tcpAddr.Port}
	copy(sa.Addr[:], tcpAddr.IP.To4())
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("SO_REUSEADDR: %w", err)
	}
	if err := syscall.Bind(fd, sa); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("bind %s: %w", addr, err)
	}
	if err := syscall.Listen(fd, backlog); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	file := os.NewFile(uintptr(fd), "listener")
	defer file.Close()
	ln, err := net.FileListener(file)
	if err != nil {
		return nil, fmt.Errorf("listener from fd: %w", err)
	}
	return ln, nil
}

// serveNXDomain answers every DNS query on addr with NXDOMAIN (the question echoed, no
// records), as a resolver answers a name under .invalid.
func serveNXDomain(addr string) error {
	conn, err := net.ListenPacket("udp", addr)
	if err != nil {
		return fmt.Errorf("dns listener: %w", err)
	}
	fmt.Printf("ready dns=%s pid=%d\n", conn.LocalAddr(), os.Getpid())
	buf := make([]byte, 1500)
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			return fmt.Errorf("dns read: %w", err)
		}
		if reply := nxdomain(buf[:n]); reply != nil {
			_, _ = conn.WriteTo(reply, from)
		}
	}
}

// nxdomain builds the NXDOMAIN answer to one query, or nil for a packet that is not one.
func nxdomain(q []byte) []byte {
	if len(q) < 12 || q[2]&0x80 != 0 || q[4] != 0 || q[5] != 1 {
		return nil
	}
	// The question: labels up to the root label, then type and class.
	i := 12
	for i < len(q) && q[i] != 0 {
		if q[i]&0xc0 != 0 {
			return nil
		}
		i += int(q[i]) + 1
	}
	end := i + 1 + 4
	if end > len(q) {
		return nil
	}
	reply := append([]byte(nil), q[:end]...)
	reply[2] = 0x80 | (q[2] & 0x01) // QR, RD copied
	reply[3] = 0x80 | 3             // RA, RCODE NXDOMAIN
	for k := 6; k < 12; k++ {
		reply[k] = 0 // no answer, authority or additional records
	}
	return reply
}

// churn is another process on the node: it opens and closes short connections to its own
// loopback listener in bursts of varying size, and sometimes holds a few open for seconds.
func churn(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("noise listener: %w", err)
	}
	fmt.Printf("ready noise=%s pid=%d\n", ln.Addr(), os.Getpid())
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			go func(c net.Conn) {
				buf := make([]byte, 64)
				_, _ = c.Read(buf)
				_, _ = c.Write([]byte("ok\n"))
				_ = c.Close()
			}(c)
		}
	}()
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	for {
		burst := 1 + rng.Intn(40)
		hold := rng.Intn(10) == 0
		for i := 0; i < burst; i++ {
			c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second)
			if err != nil {
				continue
			}
			_, _ = c.Write([]byte("ping\n"))
			if hold && i < 5 {
				go func(c net.Conn, d time.Duration) {
					time.Sleep(d)
					_ = c.Close()
				}(c, time.Duration(1+rng.Intn(5))*time.Second)
				continue
			}
			buf := make([]byte, 8)
			_, _ = c.Read(buf)
			_ = c.Close()
		}
		time.Sleep(time.Duration(200+rng.Intn(1800)) * time.Millisecond)
	}
}
