package main

import (
	"fmt"
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
	fmt.Println("ready")
	if err := http.ListenAndServe(os.Args[1], nil); err != nil {
		panic(err)
	}
}
