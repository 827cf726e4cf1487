// gateway: the media pipeline's front door. GET /media/{id} fans out to thumbnailer and
// metadata in parallel and answers 502 when either fails. Logs with logrus' TextFormatter
// (logfmt lines), sends spans over OTLP/JSON.
//
// Fault switch (admin /fault): "fresh-conn" calls metadata with a new connection per request
// (DisableKeepAlives), the client-side TIME_WAIT storm.
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"unseenlab/pipe"
)

func main() {
	flags := pipe.ParseFlags()
	log := logrus.New()
	log.Out = os.Stdout
	log.Formatter = &logrus.TextFormatter{DisableColors: true, FullTimestamp: true, TimestampFormat: time.RFC3339Nano}
	tracer := pipe.NewTracer("gateway", flags.OTLP)
	faults := &pipe.Faults{}
	pipe.ServeAdmin(flags.Admin, faults, log.Infof)

	pooled := &http.Client{Timeout: 3 * time.Second}
	fresh := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

	call := func(parent pipe.SpanContext, peer, path string, client *http.Client) (int, error) {
		addr := flags.Peers[peer]
		url := "http://" + addr + path
		span := tracer.ClientSpan(parent, http.MethodGet, url, addr)
		defer span.End()
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			span.Fail(err.Error())
			return 0, err
		}
		pipe.Inject(req, span.SC)
		resp, err := client.Do(req)
		if err != nil {
			span.Fail(err.Error())
			return 0, err
		}
		defer resp.Body.Close()
		n, _ := io.Copy(io.Discard, resp.Body)
		span.Set("http.response.status_code", resp.StatusCode)
		if resp.StatusCode >= 500 {
			span.Fail(fmt.Sprintf("%s answered %d", peer, resp.StatusCode))
			return resp.StatusCode, fmt.Errorf("%s: unexpected status %d (%d bytes)", peer, resp.StatusCode, n)
		}
		return resp.StatusCode, nil
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/media/", func(w http.ResponseWriter, r *http.Request) {
		started := time.Now()
		id := strings.TrimPrefix(r.URL.Path, "/media/")
		span := tracer.ServerSpan(r, "/media/{id}")
		defer span.End()
		entry := log.WithFields(logrus.Fields{"trace_id": span.SC.TraceID, "span_id": span.SC.SpanID, "media_id": id})
		metaClient := pooled
		if faults.On("fresh-conn") {
			metaClient = fresh
		}
		var wg sync.WaitGroup
		var thumbErr, metaErr error
		wg.Add(2)
		go func() { defer wg.Done(); _, thumbErr = call(span.SC, "thumbnailer", "/thumb/"+id+"?w=160", pooled) }()
		go func() { defer wg.Done(); _, metaErr = call(span.SC, "metadata", "/meta/"+id, metaClient) }()
		wg.Wait()
		status := http.StatusOK
		for _, e := range []struct {
			what string
			err  error
		}{{"thumbnail", thumbErr}, {"metadata", metaErr}} {
			if e.err != nil {
				status = http.StatusBadGateway
				entry.WithError(e.err).Errorf("render media: %s fetch failed", e.what)
				span.Fail(e.what + ": " + e.err.Error())
			}
		}
		span.Set("http.response.status_code", status)
		w.Header().Set("X-Trace-Id", span.SC.TraceID)
		w.WriteHeader(status)
		fmt.Fprintf(w, "media %s status %d\n", id, status)
		access := entry.WithFields(logrus.Fields{"method": r.Method, "path": r.URL.Path, "status": status,
			"duration_ms": time.Since(started).Milliseconds()})
		if status >= 500 {
			access.Warn("request served")
		} else {
			access.Info("request served")
		}
	})
	ln, err := net.Listen("tcp", flags.Listen)
	if err != nil {
		log.WithError(err).Fatal("listen")
	}
	log.WithField("addr", ln.Addr().String()).Info("gateway listening")
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.WithError(srv.Serve(ln)).Fatal("serve")
}
