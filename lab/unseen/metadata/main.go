// metadata: media metadata, read from blobstore. GET /meta/{id} calls blobstore's
// /blob/{id}, waiting at most 800 ms for the answer's headers. Logs with logrus' TextFormatter, sends spans.
//
// Fault switch (admin /fault): "keep-body" returns without reading or closing blobstore's
// response bodies: every call leaves its connection open, blobstore's idle timeout closes
// its end, and the connections pile up in CLOSE_WAIT here until the fds run out.
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"unseenlab/pipe"
)

func main() {
	flags := pipe.ParseFlags()
	log := logrus.New()
	log.Out = os.Stdout
	log.Formatter = &logrus.TextFormatter{DisableColors: true, FullTimestamp: true}
	tracer := pipe.NewTracer("metadata", flags.OTLP)
	faults := &pipe.Faults{}
	pipe.ServeAdmin(flags.Admin, faults, log.Infof)
	// Only the wait for the answer's headers is bounded (800 ms); the body is read without a
	// deadline, as with most hand-built Go clients.
	client := &http.Client{Transport: &http.Transport{ResponseHeaderTimeout: 800 * time.Millisecond}}
	blob := flags.Peers["blobstore"]

	fetch := func(parent pipe.SpanContext, id string) (int64, error) {
		url := "http://" + blob + "/blob/" + id
		span := tracer.ClientSpan(parent, http.MethodGet, url, blob)
		defer span.End()
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		pipe.Inject(req, span.SC)
		resp, err := client.Do(req)
		if err != nil {
			span.Fail(err.Error())
			return 0, err
		}
		span.Set("http.response.status_code", resp.StatusCode)
		if faults.On("keep-body") {
			// The bug: only the length header is used; the body is never read or closed.
			return resp.ContentLength, nil
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		if err != nil {
			span.Fail(err.Error())
			return n, err
		}
		if resp.StatusCode != http.StatusOK {
			span.Fail(fmt.Sprintf("blobstore answered %d", resp.StatusCode))
			return n, fmt.Errorf("blobstore answered %d", resp.StatusCode)
		}
		return n, nil
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/meta/", func(w http.ResponseWriter, r *http.Request) {
		id := strings.TrimPrefix(r.URL.Path, "/meta/")
		span := tracer.ServerSpan(r, "/meta/{id}")
		defer span.End()
		size, err := fetch(span.SC, id)
		if err != nil {
			log.WithFields(logrus.Fields{"trace_id": span.SC.TraceID, "span_id": span.SC.SpanID, "blob": id}).
				WithError(err).Error("load blob metadata")
			span.Fail(err.Error())
			span.Set("http.response.status_code", 502)
			http.Error(w, "blob unavailable", http.StatusBadGateway)
			return
		}
		span.Set("http.response.status_code", 200)
		fmt.Fprintf(w, `{"id":%q,"size":%d}`, id, size)
	})
	ln, err := net.Listen("tcp", flags.Listen)
	if err != nil {
		log.WithError(err).Fatal("listen")
	}
	log.WithField("addr", ln.Addr().String()).Info("metadata listening")
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.WithError(srv.Serve(ln)).Fatal("serve")
}
