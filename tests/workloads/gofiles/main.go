// Test workload for `profile scan`: a Go program that reads and writes files, runs
// goroutines, sleeps and handles a signal, and never touches the network.
//
//	gofiles PATH    copies PATH to PATH.copy (in 4 goroutines, each its own copy), prints
//	                the total size, then sends itself SIGUSR1 and waits for its handler
package main

import (
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: gofiles PATH")
		os.Exit(2)
	}
	path := os.Args[1]
	var wg sync.WaitGroup
	sizes := make([]int, 4)
	for i := range sizes {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			data, err := os.ReadFile(path)
			if err != nil {
				return
			}
			copyPath := fmt.Sprintf("%s.copy%d", path, i)
			if os.WriteFile(copyPath, data, 0o644) == nil {
				sizes[i] = len(data)
				os.Remove(copyPath)
			}
		}(i)
	}
	wg.Wait()
	total := 0
	for _, s := range sizes {
		total += s
	}
	fmt.Println("bytes", total)
	got := make(chan os.Signal, 1)
	signal.Notify(got, syscall.SIGUSR1)
	syscall.Kill(os.Getpid(), syscall.SIGUSR1)
	select {
	case <-got:
		fmt.Println("signal")
	case <-time.After(10 * time.Second):
		fmt.Println("no signal")
		os.Exit(1)
	}
}
