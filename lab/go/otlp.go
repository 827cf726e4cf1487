package main

// Spans as OTLP/JSON, posted by the service itself: Debian packages no OTLP exporter for Go, so
// this file is the exporter. It follows the OTLP/JSON mapping (hex ids, int64 as strings, enum
// numbers) and the current HTTP semantic conventions (span names `{method} {http.route}` on
// servers and `{method}` on clients, `http.request.method`, `http.route`, `url.full`,
// `server.address`, `server.port`, `http.response.status_code`, `error.type`), as otelhttp
// and otelgin record them: a server span is an error only for 5xx and then has no message; a
// client span is an error for a transport error (message: the Go error string, plus an
// `exception` event) or any status >= 400 (no message).
//
// Bounds: at most queueCap spans wait; past that new spans are dropped and counted, and every
// drop is reported on stderr (the lab driver fails a run whose spans were dropped). A batch is
// posted every flushEvery or at batchMax spans; a 429/503 or a transport error is retried
// after the server's Retry-After (or 200 ms), at most postAttempts times.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	kindServer = 2
	kindClient = 3

	statusUnset = 0
	statusError = 2

	// 20 requests/s through three services with fan-out 4 make ~250 spans/s; 20k spans is over a
	// minute of them, far more than an agent stall of a few seconds needs.
	queueCap     = 20000
	batchMax     = 512
	flushEvery   = 250 * time.Millisecond
	postAttempts = 5
)

type traceID [16]byte
type spanID [8]byte

func (t traceID) String() string { return hex.EncodeToString(t[:]) }
func (s spanID) String() string  { return hex.EncodeToString(s[:]) }

func newTraceID() (t traceID) {
	_, _ = rand.Read(t[:])
	return
}

func newSpanID() (s spanID) {
	_, _ = rand.Read(s[:])
	return
}

// attr is one span attribute; an int when isInt.
type attr struct {
	key   string
	str   string
	num   int64
	isInt bool
}

func str(key, value string) attr { return attr{key: key, str: value} }
func num(key string, value int) attr {
	return attr{key: key, num: int64(value), isInt: true}
}

type event struct {
	name  string
	at    time.Time
	attrs []attr
}

// span is one finished or running span.
type span struct {
	trace      traceID
	id         spanID
	parent     spanID
	name       string
	kind       int
	start, end time.Time
	attrs      []attr
	events     []event
	status     int
	message    string
}

func (s *span) traceparent() string {
	return fmt.Sprintf("00-%s-%s-01", s.trace, s.id)
}

// parseTraceparent reads a W3C traceparent header (version 00).
func parseTraceparent(h string) (traceID, spanID, bool) {
	var t traceID
	var p spanID
	parts := strings.Split(strings.TrimSpace(h), "-")
	if len(parts) < 4 || len(parts[0]) != 2 || len(parts[1]) != 32 || len(parts[2]) != 16 {
		return t, p, false
	}
	tb, err1 := hex.DecodeString(parts[1])
	pb, err2 := hex.DecodeString(parts[2])
	if err1 != nil || err2 != nil {
		return t, p, false
	}
	copy(t[:], tb)
	copy(p[:], pb)
	return t, p, t != traceID{} && p != spanID{}
}

type spanKey struct{}

func withSpan(ctx context.Context, s *span) context.Context {
	return context.WithValue(ctx, spanKey{}, s)
}

func spanFrom(ctx context.Context) *span {
	s, _ := ctx.Value(spanKey{}).(*span)
	return s
}

// exporter posts finished spans to BASE/v1/traces.
type exporter struct {
	url     string
	service string
	queue   chan *span
	client  *http.Client
	dropped atomic.Int64
	once    sync.Once
}

func newExporter(base, service string) *exporter {
	if base == "" {
		return nil
	}
	e := &exporter{
		url:     strings.TrimRight(base, "/") + "/v1/traces",
		service: service,
		queue:   make(chan *span, queueCap),
		// Its own client and connections: a fault on the service's downstream transport (a
		// new connection per call, a resolver failure) must not change how spans travel.
		client: &http.Client{Timeout: 5 * time.Second},
	}
	go e.loop()
	return e
}

// finish ends the span and queues it; never blocks.
func (e *exporter) finish(s *span) {
	s.end = time.Now()
	if e == nil {
		return
	}
	select {
	case e.queue <- s:
	default:
		n := e.dropped.Add(1)
		fmt.Fprintf(os.Stderr, "labsvc %s: span queue full, %d spans dropped\n", e.service, n)
	}
}

func (e *exporter) loop() {
	tick := time.NewTicker(flushEvery)
	defer tick.Stop()
	batch := make([]*span, 0, batchMax)
	for {
		select {
		case s := <-e.queue:
			batch = append(batch, s)
			if len(batch) < batchMax {
				continue
			}
		case <-tick.C:
			if len(batch) == 0 {
				continue
			}
		}
		e.post(batch)
		batch = batch[:0]
	}
}

func (e *exporter) post(batch []*span) {
	body, err := json.Marshal(e.encode(batch))
	if err != nil {
		fmt.Fprintf(os.Stderr, "labsvc %s: encoding %d spans: %v\n", e.service, len(batch), err)
		return
	}
	for attempt := 1; attempt <= postAttempts; attempt++ {
		resp, err := e.client.Post(e.url, "application/json", bytes.NewReader(body))
		wait := 200 * time.Millisecond
		if err == nil {
			_, _ = bytes.NewBuffer(nil).ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				return
			}
			if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
				wait = time.Duration(secs) * time.Second
			}
			if resp.StatusCode != 429 && resp.StatusCode != 503 {
				err = fmt.Errorf("HTTP %s", resp.Status)
				attempt = postAttempts
			}
			if attempt == postAttempts {
				fmt.Fprintf(os.Stderr, "labsvc %s: %d spans dropped: HTTP %s\n", e.service, len(batch), resp.Status)
				e.dropped.Add(int64(len(batch)))
				return
			}
		} else if attempt == postAttempts {
			fmt.Fprintf(os.Stderr, "labsvc %s: %d spans dropped: %v\n", e.service, len(batch), err)
			e.dropped.Add(int64(len(batch)))
			return
		}
		time.Sleep(wait)
	}
}

// The OTLP/JSON shapes (only the fields the lab sets).
type (
	jsonValue struct {
		StringValue *string `json:"stringValue,omitempty"`
		IntValue    *string `json:"intValue,omitempty"`
	}
	jsonKV struct {
		Key   string    `json:"key"`
		Value jsonValue `json:"value"`
	}
	jsonEvent struct {
		Name         string   `json:"name"`
		TimeUnixNano string   `json:"timeUnixNano"`
		Attributes   []jsonKV `json:"attributes,omitempty"`
	}
	jsonStatus struct {
		Code    int    `json:"code,omitempty"`
		Message string `json:"message,omitempty"`
	}
	jsonSpan struct {
		TraceID           string      `json:"traceId"`
		SpanID            string      `json:"spanId"`
		ParentSpanID      string      `json:"parentSpanId,omitempty"`
		Name              string      `json:"name"`
		Kind              int         `json:"kind"`
		StartTimeUnixNano string      `json:"startTimeUnixNano"`
		EndTimeUnixNano   string      `json:"endTimeUnixNano"`
		Attributes        []jsonKV    `json:"attributes,omitempty"`
		Events            []jsonEvent `json:"events,omitempty"`
		Status            jsonStatus  `json:"status"`
	}
	jsonScopeSpans struct {
		Scope struct {
			Name    string `json:"name"`
			Version string `json:"version"`
		} `json:"scope"`
		Spans []jsonSpan `json:"spans"`
	}
	jsonResourceSpans struct {
		Resource struct {
			Attributes []jsonKV `json:"attributes"`
		} `json:"resource"`
		ScopeSpans []jsonScopeSpans `json:"scopeSpans"`
	}
	jsonTraces struct {
		ResourceSpans []jsonResourceSpans `json:"resourceSpans"`
	}
)

func encodeAttrs(attrs []attr) []jsonKV {
	out := make([]jsonKV, 0, len(attrs))
	for _, a := range attrs {
		var v jsonValue
		if a.isInt {
			s := strconv.FormatInt(a.num, 10)
			v.IntValue = &s
		} else {
			s := a.str
			v.StringValue = &s
		}
		out = append(out, jsonKV{Key: a.key, Value: v})
	}
	return out
}

func nanos(t time.Time) string { return strconv.FormatInt(t.UnixNano(), 10) }

func (e *exporter) encode(batch []*span) jsonTraces {
	var scope jsonScopeSpans
	scope.Scope.Name = "faultline-lab/labsvc"
	scope.Scope.Version = "1"
	for _, s := range batch {
		js := jsonSpan{
			TraceID:           s.trace.String(),
			SpanID:            s.id.String(),
			Name:              s.name,
			Kind:              s.kind,
			StartTimeUnixNano: nanos(s.start),
			EndTimeUnixNano:   nanos(s.end),
			Attributes:        encodeAttrs(s.attrs),
			Status:            jsonStatus{Code: s.status, Message: s.message},
		}
		if s.parent != (spanID{}) {
			js.ParentSpanID = s.parent.String()
		}
		for _, ev := range s.events {
			js.Events = append(js.Events, jsonEvent{Name: ev.name, TimeUnixNano: nanos(ev.at), Attributes: encodeAttrs(ev.attrs)})
		}
		scope.Spans = append(scope.Spans, js)
	}
	var rs jsonResourceSpans
	rs.Resource.Attributes = encodeAttrs([]attr{
		str("service.name", e.service),
		str("telemetry.sdk.language", "go"),
		num("process.pid", os.Getpid()),
	})
	rs.ScopeSpans = []jsonScopeSpans{scope}
	return jsonTraces{ResourceSpans: []jsonResourceSpans{rs}}
}
