// blobstore: stores the media bytes. GET /blob/{id}. Logs plain lines with the standard
// library's log package and sends no spans at all. Its server closes idle keep-alive
// connections after 3 s.
//
// Fault switch (admin /fault): "slow" makes every answer take 2.5 s (past metadata's 800 ms
// client timeout). The lab also kills and restarts this process (connection refused).
package main

import (
	"bytes"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"unseenlab/pipe"
)

func main() {
	flags := pipe.ParseFlags()
	logger := log.New(os.Stdout, "", log.LstdFlags|log.Lmicroseconds|log.Lshortfile)
	faults := &pipe.Faults{}
	pipe.ServeAdmin(flags.Admin, faults, logger.Printf)
	payload := bytes.Repeat([]byte("m"), 512)

	mux := http.NewServeMux()
	mux.HandleFunc("/blob/", func(w http.ResponseWriter, r *http.Request) {
		id := strings.TrimPrefix(r.URL.Path, "/blob/")
		started := time.Now()
		if faults.On("slow") {
			time.Sleep(2500 * time.Millisecond)
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		if _, err := w.Write(payload); err != nil {
			logger.Printf("write blob %s to %s: %v", id, r.RemoteAddr, err)
			return
		}
		logger.Printf("GET /blob/%s 200 %dB in %s", id, len(payload), time.Since(started).Round(time.Microsecond))
	})
	ln, err := net.Listen("tcp", flags.Listen)
	if err != nil {
		logger.Fatalf("listen %s: %v", flags.Listen, err)
	}
	logger.Printf("blobstore listening on %s", ln.Addr())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 3 * time.Second,
		ErrorLog: logger}
	logger.Fatal(srv.Serve(ln))
}
