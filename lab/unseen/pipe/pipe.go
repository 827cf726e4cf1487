// Package pipe is the shared plumbing of the unseen media-pipeline lab: W3C trace context,
// spans posted as OTLP/JSON to an OTLP/HTTP receiver, the admin listener (pprof goroutine
// pages and the fault switch) and the lab's flags.
//
// It deliberately uses nothing but the standard library: the services log with logrus or
// stdlib log themselves.
package pipe

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof" // goroutine pages on the admin listener (http.DefaultServeMux)
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Flags every service of the lab takes.
type Flags struct {
	Listen string // service listener, host:port
	Admin  string // admin listener (pprof and /fault), host:port
	OTLP   string // OTLP/HTTP traces URL, empty: no spans
	Peers  map[string]string
}

// ParseFlags reads -listen, -admin, -otlp and -peer name=host:port (repeatable).
func ParseFlags() *Flags {
	f := &Flags{Peers: map[string]string{}}
	flag.StringVar(&f.Listen, "listen", "127.0.0.1:0", "service listen address")
	flag.StringVar(&f.Admin, "admin", "127.0.0.1:0", "admin (pprof, fault switch) listen address")
	flag.StringVar(&f.OTLP, "otlp", "", "OTLP/HTTP traces endpoint (http://host:port/v1/traces); empty: no spans")
	flag.Func("peer", "name=host:port of a callee (repeatable)", func(s string) error {
		name, addr, ok := strings.Cut(s, "=")
		if !ok {
			return fmt.Errorf("want name=host:port, got %q", s)
		}
		f.Peers[name] = addr
		return nil
	})
	flag.Parse()
	return f
}

// Faults is the fault switch: named faults on or off, set through the admin listener
// (`POST /fault?name=X&on=1`).
type Faults struct {
	mu sync.Mutex
	on map[string]bool
}

// On says whether the named fault is switched on.
func (f *Faults) On(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.on[name]
}

// ServeAdmin starts the admin listener: /debug/pprof/* and /fault.
func ServeAdmin(addr string, faults *Faults, logf func(string, ...interface{})) {
	faults.mu.Lock()
	if faults.on == nil {
		faults.on = map[string]bool{}
	}
	faults.mu.Unlock()
	http.HandleFunc("/fault", func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Query().Get("name")
		on := r.URL.Query().Get("on") == "1"
		if r.Method == http.MethodPost && name != "" {
			faults.mu.Lock()
			faults.on[name] = on
			faults.mu.Unlock()
			logf("fault switch %s=%v", name, on)
		}
		faults.mu.Lock()
		defer faults.mu.Unlock()
		_ = json.NewEncoder(w).Encode(faults.on)
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "admin listen %s: %v\n", addr, err)
		os.Exit(1)
	}
	go func() { _ = http.Serve(ln, nil) }()
}

// IDs of a span in a trace.
type SpanContext struct {
	TraceID string // 32 hex
	SpanID  string // 16 hex
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// FromRequest reads the caller's W3C traceparent; ok is false without a valid one.
func FromRequest(r *http.Request) (parent SpanContext, ok bool) {
	p := strings.Split(r.Header.Get("traceparent"), "-")
	if len(p) != 4 || len(p[1]) != 32 || len(p[2]) != 16 {
		return SpanContext{}, false
	}
	return SpanContext{TraceID: p[1], SpanID: p[2]}, true
}

// Inject sets the W3C traceparent of span sc on an outgoing request.
func Inject(req *http.Request, sc SpanContext) {
	req.Header.Set("traceparent", "00-"+sc.TraceID+"-"+sc.SpanID+"-01")
}

// Span kinds of OTLP.
const (
	KindServer = 2
	KindClient = 3
)

// Span is one finished or running span.
type Span struct {
	SC     SpanContext
	Parent string
	Name   string
	Kind   int
	Start  time.Time
	attrs  map[string]interface{}
	errMsg string
	failed bool
	tracer *Tracer
}

// Tracer batches spans and posts them as OTLP/JSON; a nil endpoint drops them.
type Tracer struct {
	service  string
	endpoint string
	mu       sync.Mutex
	pending  []map[string]interface{}
	client   *http.Client
}

// NewTracer starts the exporter loop (every 500 ms) when endpoint is set.
func NewTracer(service, endpoint string) *Tracer {
	t := &Tracer{service: service, endpoint: endpoint, client: &http.Client{Timeout: 3 * time.Second}}
	if endpoint != "" {
		go func() {
			for range time.Tick(500 * time.Millisecond) {
				t.flush()
			}
		}()
	}
	return t
}

// Start begins a span: a child of parent when parent.TraceID is set, else a new trace.
func (t *Tracer) Start(parent SpanContext, name string, kind int) *Span {
	sc := SpanContext{TraceID: parent.TraceID, SpanID: randHex(8)}
	if sc.TraceID == "" {
		sc.TraceID = randHex(16)
	}
	return &Span{SC: sc, Parent: parent.SpanID, Name: name, Kind: kind, Start: time.Now(),
		attrs: map[string]interface{}{}, tracer: t}
}

// Set records an attribute (string or int).
func (s *Span) Set(k string, v interface{}) { s.attrs[k] = v }

// Fail marks the span as an error with msg.
func (s *Span) Fail(msg string) { s.failed, s.errMsg = true, msg }

// End finishes the span and queues it for export.
func (s *Span) End() {
	t := s.tracer
	if t == nil || t.endpoint == "" {
		return
	}
	var attrs []map[string]interface{}
	for k, v := range s.attrs {
		switch x := v.(type) {
		case int:
			attrs = append(attrs, map[string]interface{}{"key": k, "value": map[string]interface{}{"intValue": strconv.Itoa(x)}})
		default:
			attrs = append(attrs, map[string]interface{}{"key": k, "value": map[string]interface{}{"stringValue": fmt.Sprint(x)}})
		}
	}
	span := map[string]interface{}{
		"traceId":           s.SC.TraceID,
		"spanId":            s.SC.SpanID,
		"name":              s.Name,
		"kind":              s.Kind,
		"startTimeUnixNano": strconv.FormatInt(s.Start.UnixNano(), 10),
		"endTimeUnixNano":   strconv.FormatInt(time.Now().UnixNano(), 10),
		"attributes":        attrs,
	}
	if s.Parent != "" {
		span["parentSpanId"] = s.Parent
	}
	if s.failed {
		span["status"] = map[string]interface{}{"code": 2, "message": s.errMsg}
		span["events"] = []map[string]interface{}{{
			"name":         "exception",
			"timeUnixNano": strconv.FormatInt(time.Now().UnixNano(), 10),
			"attributes": []map[string]interface{}{
				{"key": "exception.message", "value": map[string]interface{}{"stringValue": s.errMsg}},
			},
		}}
	}
	t.mu.Lock()
	if len(t.pending) < 20000 {
		t.pending = append(t.pending, span)
	}
	t.mu.Unlock()
}

func (t *Tracer) flush() {
	t.mu.Lock()
	spans := t.pending
	t.pending = nil
	t.mu.Unlock()
	if len(spans) == 0 {
		return
	}
	body := map[string]interface{}{
		"resourceSpans": []interface{}{map[string]interface{}{
			"resource": map[string]interface{}{"attributes": []interface{}{
				map[string]interface{}{"key": "service.name", "value": map[string]interface{}{"stringValue": t.service}},
				map[string]interface{}{"key": "process.pid", "value": map[string]interface{}{"intValue": strconv.Itoa(os.Getpid())}},
			}},
			"scopeSpans": []interface{}{map[string]interface{}{
				"scope": map[string]interface{}{"name": "unseenlab/pipe"},
				"spans": spans,
			}},
		}},
	}
	b, _ := json.Marshal(body)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, t.endpoint, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	resp, err := t.client.Do(req)
	if err != nil {
		fmt.Fprintf(os.Stderr, "otlp export: %v\n", err)
		return
	}
	resp.Body.Close()
}

// ClientSpan starts a CLIENT span for an outgoing GET to url at peer host:port, with the
// semantic-convention attributes an instrumented Go HTTP client records.
func (t *Tracer) ClientSpan(parent SpanContext, method, url, peer string) *Span {
	s := t.Start(parent, method, KindClient)
	host, port, _ := net.SplitHostPort(peer)
	p, _ := strconv.Atoi(port)
	s.Set("http.request.method", method)
	s.Set("url.full", url)
	s.Set("server.address", host)
	s.Set("server.port", p)
	return s
}

// ServerSpan starts a SERVER span for an incoming request, a child of its traceparent.
func (t *Tracer) ServerSpan(r *http.Request, route string) *Span {
	parent, _ := FromRequest(r)
	s := t.Start(parent, r.Method+" "+route, KindServer)
	s.Set("http.request.method", r.Method)
	s.Set("http.route", route)
	s.Set("url.path", r.URL.Path)
	return s
}
