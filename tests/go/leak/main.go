// A Go service that leaks a goroutine per request: each `GET /leak` starts one that blocks
// forever on a channel send. It serves net/http/pprof on the same listener and prints
// "listening on ADDR" once it accepts connections. It listens on its first argument
// (`127.0.0.1:PORT`) when given one, else on a free loopback port. Used by
// tests/e2e/incidents.rs, built with Debian's golang-go (GOPATH mode, standard library only).
package main

import (
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
)

var stuck = make(chan int)

func leak(w http.ResponseWriter, r *http.Request) {
	go func() { stuck <- 1 }()
	fmt.Fprintln(w, "ok")
}

func main() {
	http.HandleFunc("/leak", leak)
	addr := "127.0.0.1:0"
	if len(os.Args) > 1 {
		addr = os.Args[1]
	}
	listener, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("listening on %s\n", listener.Addr())
	if err := http.Serve(listener, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
