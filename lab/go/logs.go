package main

// Logger styles, written the way Go services write them (Go 1.19 has neither log/slog nor a
// Debian zap package, so the two JSON styles are written here, field for field as zap's
// production encoder and slog's JSON handler produce them):
//
//   - zap:  {"level":"error","ts":1733360523.123456,"caller":"labsvc/handler.go:88","msg":"...",
//     "service":"orders","error":"...","trace_id":"...","span_id":"..."}
//   - slog: {"time":"2026-12-05T01:02:03.123456789Z","level":"ERROR","msg":"...","service":"orders",
//     "err":"...","trace_id":"...","span_id":"..."}
//   - gin:  Gin's default request logger (`[GIN] 2026/12/05 - 01:02:03 | 200 | ...`) plus the
//     standard `log` package with date, microseconds and short file for everything else; the
//     trace id is written into the message as `trace_id=...`.
//
// A recovered panic is one record followed by the raw `debug.Stack()` lines, as a
// recovery middleware that logs the error and then writes the stack does.

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
)

// kv is one extra log field.
type kv struct {
	key   string
	value interface{}
}

// logger is what a service logs through, whatever the style.
type logger interface {
	// middleware returns the request logger (nil for styles that log requests themselves in
	// access).
	middleware() gin.HandlerFunc
	// access logs one finished request (the JSON styles' request line).
	access(s *span, method, path string, status int, latency time.Duration)
	// errorf logs a failure with its Go error.
	errorf(s *span, msg string, err error, fields ...kv)
	// info logs a plain message.
	info(msg string, fields ...kv)
	// panicked logs a recovered panic and then the raw stack.
	panicked(s *span, recovered interface{}, stack []byte)
	// std is a standard logger for http.Server.ErrorLog (accept errors, handler panics).
	std() *log.Logger
}

func newLogger(style, service, file string) (logger, error) {
	var out io.Writer = os.Stderr
	if file != "" {
		f, err := os.OpenFile(file, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("log file: %w", err)
		}
		out = f
	}
	w := &lockedWriter{w: out}
	switch style {
	case "zap", "slog":
		return &jsonLogger{style: style, service: service, out: w}, nil
	case "gin":
		return &ginLogger{service: service, out: w, std_: log.New(w, "", log.LstdFlags|log.Lmicroseconds|log.Lshortfile)}, nil
	}
	return nil, fmt.Errorf("-logger %q: unknown style (zap, slog, gin)", style)
}

// lockedWriter keeps a record and its stack lines together in the file.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

type jsonLogger struct {
	style   string
	service string
	out     *lockedWriter
}

func caller(skip int) string {
	_, file, line, ok := runtime.Caller(skip)
	if !ok {
		return "unknown"
	}
	if i := strings.LastIndex(file, "/"); i >= 0 {
		if j := strings.LastIndex(file[:i], "/"); j >= 0 {
			file = file[j+1:]
		}
	}
	return fmt.Sprintf("%s:%d", file, line)
}

// line renders one JSON record in the logger's style; err may be empty.
func (j *jsonLogger) line(level, msg, err string, s *span, fields []kv) []byte {
	now := time.Now()
	var b strings.Builder
	put := func(k string, v interface{}) {
		enc, _ := json.Marshal(v)
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		key, _ := json.Marshal(k)
		b.Write(key)
		b.WriteByte(':')
		b.Write(enc)
	}
	b.WriteByte('{')
	if j.style == "zap" {
		put("level", level)
		b.WriteString(fmt.Sprintf(`,"ts":%.6f`, float64(now.UnixNano())/1e9))
		put("caller", caller(3))
		put("msg", msg)
		put("service", j.service)
		if err != "" {
			put("error", err)
		}
	} else {
		put("time", now.UTC().Format(time.RFC3339Nano))
		put("level", strings.ToUpper(level))
		put("msg", msg)
		put("service", j.service)
		if err != "" {
			put("err", err)
		}
	}
	for _, f := range fields {
		put(f.key, f.value)
	}
	if s != nil {
		put("trace_id", s.trace.String())
		put("span_id", s.id.String())
	}
	b.WriteString("}\n")
	return []byte(b.String())
}

func (j *jsonLogger) middleware() gin.HandlerFunc { return nil }

func (j *jsonLogger) access(s *span, method, path string, status int, latency time.Duration) {
	level := "info"
	if status >= 500 {
		level = "warn"
	}
	_, _ = j.out.Write(j.line(level, "request completed", "", s, []kv{
		{"method", method}, {"path", path}, {"status", status},
		{"latency_ms", float64(latency.Microseconds()) / 1000},
	}))
}

func (j *jsonLogger) errorf(s *span, msg string, err error, fields ...kv) {
	_, _ = j.out.Write(j.line("error", msg, err.Error(), s, fields))
}

func (j *jsonLogger) info(msg string, fields ...kv) {
	_, _ = j.out.Write(j.line("info", msg, "", nil, fields))
}

func (j *jsonLogger) panicked(s *span, recovered interface{}, stack []byte) {
	record := j.line("error", "panic recovered", fmt.Sprint(recovered), s, nil)
	_, _ = j.out.Write(append(record, stack...))
}

func (j *jsonLogger) std() *log.Logger {
	return log.New(&stdToJSON{j: j}, "", 0)
}

// stdToJSON turns http.Server's ErrorLog lines into error records, as zap.NewStdLogAt(logger,
// zap.ErrorLevel) does.
type stdToJSON struct{ j *jsonLogger }

func (w *stdToJSON) Write(p []byte) (int, error) {
	msg := strings.TrimRight(string(p), "\n")
	_, err := w.j.out.Write(w.j.line("error", msg, "", nil, []kv{{"logger", "http.Server"}}))
	return len(p), err
}

type ginLogger struct {
	service string
	out     *lockedWriter
	std_    *log.Logger
}

func (g *ginLogger) middleware() gin.HandlerFunc {
	return gin.LoggerWithWriter(g.out)
}

func (g *ginLogger) access(*span, string, string, int, time.Duration) {}

func ids(s *span) string {
	if s == nil {
		return ""
	}
	return fmt.Sprintf(" trace_id=%s span_id=%s", s.trace, s.id)
}

func (g *ginLogger) errorf(s *span, msg string, err error, fields ...kv) {
	var extra strings.Builder
	for _, f := range fields {
		fmt.Fprintf(&extra, " %s=%v", f.key, f.value)
	}
	_ = g.std_.Output(2, fmt.Sprintf("%s: %v%s%s", msg, err, extra.String(), ids(s)))
}

func (g *ginLogger) info(msg string, fields ...kv) {
	var extra strings.Builder
	for _, f := range fields {
		fmt.Fprintf(&extra, " %s=%v", f.key, f.value)
	}
	_ = g.std_.Output(2, msg+extra.String())
}

func (g *ginLogger) panicked(s *span, recovered interface{}, stack []byte) {
	// One Write: the record line and the stack stay together in the file.
	_ = g.std_.Output(2, fmt.Sprintf("panic recovered: %v%s\n%s", recovered, ids(s), strings.TrimRight(string(stack), "\n")))
}

func (g *ginLogger) std() *log.Logger { return g.std_ }
