package main

// The service: its Gin route, its downstream calls and its spans. Every request takes the
// cache's read lock, asks replicas for the item (first answer wins) and calls the downstream
// service -fanout times; the faults in faults.go bend exactly these steps.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"
)

type service struct {
	cfg   config
	log   logger
	spans *exporter
	fault atomic.Value // string

	// keepAlive is the downstream client as a service normally has it; perCall opens a new
	// connection for every call (the time-wait fault).
	keepAlive *http.Client
	perCall   *http.Client

	// cache is read-locked by every request; the close-wait fault write-locks it and never
	// lets go (a refresh stuck on I/O), so every request from then on hangs.
	cache   sync.RWMutex
	release chan struct{}

	srv        *http.Server
	listenHost string
	listenPort int
}

func newService(cfg config) (*service, error) {
	lg, err := newLogger(cfg.logger, cfg.name, cfg.logFile)
	if err != nil {
		return nil, err
	}
	s := &service{cfg: cfg, log: lg, spans: newExporter(cfg.otlp, cfg.name)}
	s.fault.Store("none")
	s.keepAlive = s.client(false)
	s.perCall = s.client(true)
	s.listenHost, s.listenPort = hostPort(cfg.listen)
	switch cfg.timeoutStyle {
	case "client", "context":
	default:
		return nil, fmt.Errorf("-timeout-style %q: client or context", cfg.timeoutStyle)
	}
	return s, nil
}

func (s *service) client(perCall bool) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	// Enough idle connections for the fan-out: Go's default of 2 per host would churn
	// connections (and TIME_WAIT) already in the baseline.
	t.MaxIdleConnsPerHost = 64
	t.DisableKeepAlives = perCall
	c := &http.Client{Transport: t}
	if s.cfg.timeoutStyle == "client" {
		c.Timeout = s.cfg.timeout
	}
	return c
}

func (s *service) faultNow() string { return s.fault.Load().(string) }

func (s *service) run() error {
	ln, err := listenBacklog(s.cfg.listen, s.cfg.backlog)
	if err != nil {
		return err
	}
	adminLn, err := net.Listen("tcp", s.cfg.admin)
	if err != nil {
		return fmt.Errorf("admin listener: %w", err)
	}
	http.HandleFunc("/fault", s.faultSwitch)
	http.HandleFunc("/healthz", s.health)
	go func() {
		// net/http/pprof registered itself on the default mux.
		err := http.Serve(adminLn, nil)
		fmt.Fprintf(os.Stderr, "labsvc %s: admin listener: %v\n", s.cfg.name, err)
	}()

	gin.SetMode(gin.ReleaseMode)
	engine := gin.New()
	engine.Use(s.traced())
	if mw := s.log.middleware(); mw != nil {
		engine.Use(mw)
	}
	engine.Use(s.recovery())
	engine.GET(s.cfg.route, s.handle)
	s.srv = &http.Server{
		Handler:           engine,
		ErrorLog:          s.log.std(),
		ReadHeaderTimeout: 10 * time.Second,
	}
	if s.cfg.fault != "none" {
		s.setFault(s.cfg.fault)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = s.srv.Shutdown(shutdown)
	}()
	s.log.info("listening", kv{"addr", ln.Addr().String()})
	fmt.Printf("ready name=%s listen=%s admin=%s pid=%d\n", s.cfg.name, ln.Addr(), adminLn.Addr(), os.Getpid())
	err = s.srv.Serve(&gatedListener{Listener: ln, s: s})
	if errors.Is(err, http.ErrServerClosed) {
		// Let the exporter send what the last requests recorded.
		time.Sleep(2 * flushEvery)
		return nil
	}
	return err
}

func (s *service) health(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"name":%q,"fault":%q,"pid":%d}`+"\n", s.cfg.name, s.faultNow(), os.Getpid())
}

// traced records the SERVER span of each request, continues the caller's trace from its
// traceparent, returns the trace in a traceresponse header (how the lab driver learns the
// trace of each request it sends) and writes the JSON styles' access line.
func (s *service) traced() gin.HandlerFunc {
	return func(c *gin.Context) {
		sp := &span{kind: kindServer, start: time.Now(), id: newSpanID()}
		if trace, parent, ok := parseTraceparent(c.GetHeader("traceparent")); ok {
			sp.trace, sp.parent = trace, parent
		} else {
			sp.trace = newTraceID()
		}
		c.Request = c.Request.WithContext(withSpan(c.Request.Context(), sp))
		c.Header("traceresponse", sp.traceparent())
		c.Next()

		status := c.Writer.Status()
		route := c.FullPath()
		sp.name = c.Request.Method + " " + route
		peerHost, peerPort := hostPort(c.Request.RemoteAddr)
		sp.attrs = append(sp.attrs,
			str("http.request.method", c.Request.Method),
			str("http.route", route),
			str("url.path", c.Request.URL.Path),
			str("url.scheme", "http"),
			str("server.address", s.listenHost),
			num("server.port", s.listenPort),
			str("client.address", peerHost),
			str("network.peer.address", peerHost),
			num("network.peer.port", peerPort),
			str("user_agent.original", c.Request.UserAgent()),
			num("http.response.status_code", status),
		)
		if status >= 500 {
			sp.status = statusError
			sp.attrs = append(sp.attrs, str("error.type", strconv.Itoa(status)))
		}
		s.spans.finish(sp)
		s.log.access(sp, c.Request.Method, c.Request.URL.Path, status, time.Since(sp.start))
	}
}

// recovery turns a handler panic into a 500, logging the panic and its stack.
func (s *service) recovery() gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if r := recover(); r != nil {
				s.log.panicked(spanFrom(c.Request.Context()), r, debug.Stack())
				c.AbortWithStatusJSON(http.StatusInternalServerError, gin.H{"error": "internal error"})
			}
		}()
		c.Next()
	}
}

func (s *service) handle(c *gin.Context) {
	ctx := c.Request.Context()
	sp := spanFrom(ctx)
	id := c.Param("id")
	switch s.faultNow() {
	case "eof":
		s.dropConnection(c, false)
		return
	case "reset":
		s.dropConnection(c, true)
		return
	case "slow":
		// A stall that does not look at the request's context, as a slow query does.
		time.Sleep(s.cfg.slowBy)
	}
	s.cache.RLock()
	s.cache.RUnlock()
	replica := s.firstReplica(id)
	price := s.priceOf(id)
	for i := 0; i < s.cfg.fanout && s.cfg.call != ""; i++ {
		if err := s.callDownstream(ctx, id); err != nil {
			s.log.errorf(sp, "upstream call failed", err, kv{"upstream", s.cfg.callName})
			c.JSON(http.StatusBadGateway, gin.H{"error": err.Error()})
			return
		}
	}
	c.JSON(http.StatusOK, gin.H{"id": id, "service": s.cfg.name, "replica": replica, "price": price})
}

// firstReplica asks every replica and keeps the first answer. With a buffered channel the
// others finish; the goroutine-leak fault makes it unbuffered, so every loser blocks forever.
func (s *service) firstReplica(id string) string {
	n := s.cfg.leakPerCall
	size := n
	if s.faultNow() == "goroutine-leak" {
		size = 0
	}
	answers := make(chan string, size)
	for i := 0; i < n; i++ {
		go func(i int) { answers <- fmt.Sprintf("%s@replica-%d", id, i) }(i)
	}
	return <-answers
}

// priceOf reads the item's price tier from its id. Under the panic fault the tier table is
// empty, and indexing it panics with Go's own runtime error.
func (s *service) priceOf(id string) int {
	tiers := []int{100, 250, 900}
	if s.faultNow() == "panic" {
		tiers = tiers[:0]
	}
	return tiers[len(id)%3]
}

// dropConnection takes the connection from the server and closes it without an answer; with
// reset, SO_LINGER 0 makes the close send RST instead of FIN.
func (s *service) dropConnection(c *gin.Context, reset bool) {
	conn, _, err := c.Writer.Hijack()
	if err != nil {
		c.AbortWithStatus(http.StatusInternalServerError)
		return
	}
	if tcp, ok := conn.(*net.TCPConn); ok && reset {
		_ = tcp.SetLinger(0)
	}
	_ = conn.Close()
}

// callDownstream makes one downstream call inside a CLIENT span and returns the Go error the
// caller got, as is.
func (s *service) callDownstream(ctx context.Context, id string) error {
	parent := spanFrom(ctx)
	target := strings.ReplaceAll(s.cfg.call, "{id}", url.PathEscape(id))
	client := s.keepAlive
	switch s.faultNow() {
	case "time-wait":
		client = s.perCall
	case "dns":
		target = misnamed(target, s.cfg.callName)
	}
	sp := &span{trace: parent.trace, id: newSpanID(), parent: parent.id, name: "GET", kind: kindClient, start: time.Now()}
	sp.attrs = append(sp.attrs, str("http.request.method", "GET"), str("url.full", target))
	if u, err := url.Parse(target); err == nil {
		port, _ := strconv.Atoi(u.Port())
		sp.attrs = append(sp.attrs, str("server.address", u.Hostname()), num("server.port", port))
	}
	if s.cfg.timeoutStyle == "context" {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.timeout)
		defer cancel()
	}
	err := func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err != nil {
			return err
		}
		req.Header.Set("traceparent", sp.traceparent())
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		sp.attrs = append(sp.attrs, num("http.response.status_code", resp.StatusCode))
		if _, err := io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)); err != nil {
			return fmt.Errorf("reading %s: %w", target, err)
		}
		if resp.StatusCode >= 400 {
			sp.status = statusError
			sp.attrs = append(sp.attrs, str("error.type", strconv.Itoa(resp.StatusCode)))
			return fmt.Errorf("GET %s: unexpected status %s", target, resp.Status)
		}
		return nil
	}()
	if err != nil && sp.status == statusUnset {
		sp.status = statusError
		sp.message = err.Error()
		sp.attrs = append(sp.attrs, str("error.type", fmt.Sprintf("%T", rootCause(err))))
		sp.events = append(sp.events, event{name: "exception", at: time.Now(), attrs: []attr{
			str("exception.type", fmt.Sprintf("%T", err)),
			str("exception.message", err.Error()),
		}})
	}
	s.spans.finish(sp)
	return err
}

// misnamed points a URL at a name under the reserved .invalid domain (RFC 6761), which no
// resolver answers: a service-discovery name that does not exist.
func misnamed(target, name string) string {
	u, err := url.Parse(target)
	if err != nil {
		return target
	}
	if name == "" {
		name = "upstream"
	}
	u.Host = net.JoinHostPort(name+".invalid", u.Port())
	return u.String()
}

func rootCause(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}

// useResolver sends every DNS lookup of the process to one server (the lab's loopback
// responder), so a lookup never leaves the host.
func useResolver(addr string) {
	dialer := &net.Dialer{Timeout: time.Second}
	net.DefaultResolver = &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, "udp", addr)
		},
	}
}
