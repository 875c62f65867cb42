package main

import (
	"bufio"
	"errors"
	"net"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/stillpoint/stillpoint/internal/testenv"
)

// The first SIGINT lets a command clean up (here: unpause what it paused,
// which waits on a target that never answers); a second one ends it at once
// with the signal's default action instead of waiting for that clean-up.
func TestSecondInterruptStopsAtOnce(t *testing.T) {
	gates, addrs := adminServers(t, 1)
	hang, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hang.Close()
	go func() { // accept and never answer, so every call to it waits for its timeout
		for {
			c, err := hang.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	cmd := exec.Command(build(t), "admin", "pause", "--duration", "1m", "--timeout", "1m", "-a", addrs[0]+","+hang.Addr().String())
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	testenv.Await(t, "the pause to reach the answering target", gates[0].Paused)
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stderr)
	for lines.Scan() && !strings.Contains(lines.Text(), "send it again to stop at once") {
	}
	// The clean-up now waits (up to 5 s) to unpause the target that never answers.
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("wait: %v", err)
	}
	ws := ee.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGINT {
		t.Fatalf("after a second SIGINT the command ended with %v, want killed by SIGINT", ee)
	}
}
