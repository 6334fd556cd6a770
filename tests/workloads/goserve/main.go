// Test workload for `train --ceiling`: a small static HTTP server.
//
//	goserve ADDR    serves on ADDR: `/` answers "hello", `/mkdir?name=N` makes the directory
//	                /N and answers "made"
package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: goserve ADDR")
		os.Exit(2)
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "hello")
	})
	http.HandleFunc("/mkdir", func(w http.ResponseWriter, r *http.Request) {
		dir := filepath.Join("/", filepath.Base(r.URL.Query().Get("name")))
		if err := os.Mkdir(dir, 0o755); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "made")
	})
	if err := http.ListenAndServe(os.Args[1], nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
