// Command labsvc plays one service of faultline's fault lab (issue #11): a Gin HTTP service
// that serves one route, calls its downstream service for each request, writes its log in
// one of several Go logger styles to a file, posts its spans as OTLP/JSON to an agent, exposes
// net/http/pprof on an admin port, and injects real faults when told to.
//
// Execution model: one process per service. The service listener serves the Gin route; the
// admin listener (a separate port, so that a fault on the service listener never takes the
// switch down with it) serves POST /fault?kind=NAME, GET /fault and /debug/pprof/. Spans go
// through a bounded queue to one exporter goroutine (see otlp.go); a full queue drops spans
// and says so on stderr, which the lab driver treats as a failed run.
//
// The same binary also runs the lab's helpers: `-dns ADDR` answers every DNS query on a
// loopback UDP port with NXDOMAIN (the resolver of the DNS-failure fault, so no query leaves
// the host), and `-noise ADDR` opens and closes short connections to its own loopback
// listener at a varying rate (another process's socket churn on the node).
//
// Build without network against Debian's Go sources (golang-go, golang-github-gin-gonic-gin-dev):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o labsvc .
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"time"
)

// config is everything a service is told on its command line.
type config struct {
	name         string
	listen       string
	admin        string
	route        string
	call         string
	callName     string
	fanout       int
	logger       string
	logFile      string
	otlp         string
	timeout      time.Duration
	timeoutStyle string
	nofile       uint64
	backlog      int
	resolver     string
	fault        string
	leakPerCall  int
	slowBy       time.Duration
}

func main() {
	var cfg config
	dnsAddr := flag.String("dns", "", "run as an NXDOMAIN-only DNS responder on this UDP address and nothing else")
	noiseAddr := flag.String("noise", "", "run as a socket-churn noise process on this loopback address and nothing else")
	flag.StringVar(&cfg.name, "name", "svc", "service name (OTLP service.name, log field)")
	flag.StringVar(&cfg.listen, "listen", "127.0.0.1:0", "service listener host:port")
	flag.StringVar(&cfg.admin, "admin", "127.0.0.1:0", "admin listener host:port (/fault, /debug/pprof/)")
	flag.StringVar(&cfg.route, "route", "/v1/items/:id", "the Gin route this service serves (must have :id)")
	flag.StringVar(&cfg.call, "call", "", "downstream URL with {id}, e.g. http://127.0.0.1:9001/v1/stock/{id}; empty for a leaf")
	flag.StringVar(&cfg.callName, "call-name", "", "the downstream service's name (for log fields)")
	flag.IntVar(&cfg.fanout, "fanout", 1, "downstream calls per request")
	flag.StringVar(&cfg.logger, "logger", "zap", "logger style: zap, slog or gin")
	flag.StringVar(&cfg.logFile, "log-file", "", "log file (appended); empty: stderr")
	flag.StringVar(&cfg.otlp, "otlp", "", "OTLP/HTTP base URL (spans are posted to BASE/v1/traces); empty: no spans")
	flag.DurationVar(&cfg.timeout, "timeout", time.Second, "timeout of each downstream call")
	flag.StringVar(&cfg.timeoutStyle, "timeout-style", "client", "client (http.Client.Timeout) or context (context.WithTimeout)")
	flag.Uint64Var(&cfg.nofile, "nofile", 0, "soft RLIMIT_NOFILE to set at start (0: leave it)")
	flag.IntVar(&cfg.backlog, "backlog", 16, "listen backlog of the service listener")
	flag.StringVar(&cfg.resolver, "resolver", "", "DNS server host:port for every lookup (empty: the system's)")
	flag.StringVar(&cfg.fault, "fault", "none", "fault active from the start")
	flag.IntVar(&cfg.leakPerCall, "leak-per-call", 8, "goroutines leaked per request by the goroutine-leak fault")
	flag.DurationVar(&cfg.slowBy, "slow-by", 0, "how long the slow fault stalls a request (0: 3x timeout)")
	flag.Parse()

	switch {
	case *dnsAddr != "":
		exitOn(serveNXDomain(*dnsAddr))
	case *noiseAddr != "":
		exitOn(churn(*noiseAddr))
	}
	if !strings.Contains(cfg.route, ":id") {
		exitOn(fmt.Errorf("-route %q has no :id parameter", cfg.route))
	}
	if _, ok := faultKinds[cfg.fault]; !ok {
		exitOn(fmt.Errorf("-fault %q: unknown kind (known: %s)", cfg.fault, knownFaults()))
	}
	if cfg.slowBy == 0 {
		cfg.slowBy = 3 * cfg.timeout
	}
	if cfg.nofile > 0 {
		exitOn(lowerNofile(cfg.nofile))
	}
	if cfg.resolver != "" {
		useResolver(cfg.resolver)
	}
	svc, err := newService(cfg)
	exitOn(err)
	exitOn(svc.run())
}

// lowerNofile sets the soft open-file limit. Go 1.19 raises the soft limit to the hard one when
// package os starts, so a limit given by the parent (ulimit -n) would be lost: the service
// lowers its own instead.
func lowerNofile(n uint64) error {
	var limit syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &limit); err != nil {
		return fmt.Errorf("getrlimit: %w", err)
	}
	limit.Cur = n
	if limit.Max < n {
		limit.Cur = limit.Max
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &limit); err != nil {
		return fmt.Errorf("setrlimit NOFILE %d: %w", n, err)
	}
	return nil
}

func exitOn(err error) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "labsvc: %v\n", err)
		os.Exit(1)
	}
}

// hostPort splits host:port into its parts with the port as a number.
func hostPort(addr string) (string, int) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, 0
	}
	var p int
	fmt.Sscanf(port, "%d", &p)
	return host, p
}
