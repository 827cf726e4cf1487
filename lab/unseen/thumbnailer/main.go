// thumbnailer: renders thumbnails. GET /thumb/{id}. Logs with logrus' TextFormatter, sends
// spans over OTLP/JSON.
//
// Fault switches (admin /fault): "abort" makes the handler panic with http.ErrAbortHandler
// (net/http closes the connection without an answer and logs nothing); "leak" starts a
// goroutine per request that blocks forever on a channel nobody reads.
package main

import (
	"crypto/sha256"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"unseenlab/pipe"
)

func render(id string) [32]byte {
	sum := sha256.Sum256([]byte(id))
	for i := 0; i < 200; i++ {
		sum = sha256.Sum256(sum[:])
	}
	return sum
}

func main() {
	flags := pipe.ParseFlags()
	log := logrus.New()
	log.Out = os.Stdout
	log.Formatter = &logrus.TextFormatter{DisableColors: true, FullTimestamp: true}
	tracer := pipe.NewTracer("thumbnailer", flags.OTLP)
	faults := &pipe.Faults{}
	pipe.ServeAdmin(flags.Admin, faults, log.Infof)

	// The cache warmer that should drain this channel was never started: every send blocks.
	warm := make(chan string)

	mux := http.NewServeMux()
	mux.HandleFunc("/thumb/", func(w http.ResponseWriter, r *http.Request) {
		id := strings.TrimPrefix(r.URL.Path, "/thumb/")
		span := tracer.ServerSpan(r, "/thumb/{id}")
		defer span.End()
		if faults.On("abort") {
			// What a handler does when it gives up on a response it already began: the
			// server closes the connection, the client sees EOF; net/http logs nothing.
			panic(http.ErrAbortHandler)
		}
		if faults.On("leak") {
			go func() { warm <- id }()
		}
		sum := render(id)
		span.Set("http.response.status_code", 200)
		w.Header().Set("Content-Type", "image/x-fake")
		fmt.Fprintf(w, "%x", sum)
		log.WithFields(logrus.Fields{"trace_id": span.SC.TraceID, "id": id}).Debug("thumbnail rendered")
	})
	ln, err := net.Listen("tcp", flags.Listen)
	if err != nil {
		log.WithError(err).Fatal("listen")
	}
	log.WithField("addr", ln.Addr().String()).Info("thumbnailer listening")
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 90 * time.Second}
	log.WithError(srv.Serve(ln)).Fatal("serve")
}
