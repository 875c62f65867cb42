package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/stillpoint/stillpoint/internal/admin"
	"github.com/stillpoint/stillpoint/internal/client"
	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/schema"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
	"github.com/stillpoint/stillpoint/internal/testenv"
	"github.com/stillpoint/stillpoint/internal/txn/consensus"
)

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// server is a stillpoint server process.
type serverProc struct {
	addr string
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  strings.Builder
}

func (s *serverProc) logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// startServer runs `stillpoint server` and waits until its health check
// answers SERVING.
func startServer(t *testing.T, c cli, extra ...string) *serverProc {
	t.Helper()
	s := &serverProc{addr: freePort(t)}
	s.cmd = exec.Command(c.bin, append(append(c.args, "--verbose", "server", "--listen", s.addr), extra...)...)
	stderr, _ := s.cmd.StderrPipe()
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			s.mu.Lock()
			s.log.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		s.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { s.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			s.cmd.Process.Kill()
		}
	})
	conn, err := grpc.NewClient(s.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("server on %s did not become healthy: %v\n%s", s.addr, err, s.logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// scalarAdmin calls the admin service as scalar-admin's tools do: through
// their own admin.proto (testdata/scalar-admin.proto), with no token.
func scalarAdmin(addr, method, body string) (string, error) {
	cmd := exec.Command("go", "tool", "grpcurl", "-plaintext", "-import-path", "testdata", "-proto", "scalar-admin.proto", "-d", body, addr, "rpc.Admin/"+method)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestAdminProtocolWithGenericClient(t *testing.T) {
	c := cli{t: t, bin: build(t), args: []string{"--data-dir", t.TempDir()}}
	if out, code := c.run("workload", "bank", "--count", "1"); code != 0 {
		t.Fatalf("create bank: %s", out)
	}
	s := startServer(t, c)
	steps := []struct {
		method, body, want string
	}{
		{"CheckPaused", "{}", `{}`}, // paused=false is the default value, omitted
		{"Pause", `{"wait_outstanding": true, "max_pause_wait_time": 5000}`, `{}`},
		{"CheckPaused", "{}", `"paused": true`},
		{"Unpause", "{}", `{}`},
		{"Unpause", "{}", `{}`}, // idempotent
		{"CheckPaused", "{}", `{}`},
		{"Pause", `{}`, `{}`}, // no drain, server default wait
		{"CheckPaused", "{}", `"paused": true`},
	}
	for _, st := range steps {
		out, err := scalarAdmin(s.addr, st.method, st.body)
		if err != nil || !strings.Contains(out, st.want) {
			t.Fatalf("grpcurl %s %s = %q, %v; want %q", st.method, st.body, out, err, st.want)
		}
		if st.want == "{}" && strings.Contains(out, "paused") {
			t.Fatalf("grpcurl %s = %q: want not paused", st.method, out)
		}
	}
	// While paused, new transactions are refused with UNAVAILABLE and a
	// message saying why.
	cl, err := client.Dial(s.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	_, err = cl.Begin(context.Background(), consensus.Snapshot, "")
	if !errors.Is(err, client.ErrPaused) || !strings.Contains(err.Error(), "paused") {
		t.Fatalf("Begin while paused = %v, want UNAVAILABLE saying the server is paused", err)
	}
	if out, code := c.run("--json", "admin", "check-paused", "-a", s.addr); code != 0 || !strings.Contains(out, "true") {
		t.Fatalf("admin check-paused = %d %s", code, out)
	}
}

// window is the JSON line admin pause --duration prints.
type window struct {
	StartMs  int64    `json:"pause_start_timestamp_ms"`
	EndMs    int64    `json:"pause_end_timestamp_ms"`
	Start    string   `json:"pause_start_date_time"`
	End      string   `json:"pause_end_date_time"`
	Timezone string   `json:"timezone"`
	Targets  []string `json:"targets"`
}

func TestPauseDrainsThreeReplicasUnderLoad(t *testing.T) {
	c, nss := setups(t)["postgres+mariadb"](t)
	if out, code := c.run("workload", "bank", "--namespaces", nss, "--accounts", "50", "--count", "1"); code != 0 {
		t.Fatalf("create bank: %s", out)
	}
	var addrs []string
	for range 3 {
		addrs = append(addrs, startServer(t, c, "--pause-lease", "30s").addr)
	}
	targets := strings.Join(addrs, ",")
	// The workload runs through the three servers, round-robin.
	load := exec.Command(c.bin, append(c.args, "--json", "workload", "bank", "--namespaces", nss, "--servers", targets, "--concurrency", "8", "--duration", "12s")...)
	var loadOut strings.Builder
	load.Stdout = &loadOut
	load.Stderr = os.Stderr
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	testenv.Await(t, "transfers to commit through the servers", func() bool { return c.coordinatorRows() >= 50 })
	out, code := c.run("--json", "admin", "pause", "-a", targets, "--duration", "2s")
	if code != 0 {
		t.Fatalf("admin pause --duration: exit %d: %s", code, out)
	}
	var w window
	if err := json.Unmarshal([]byte(lastLine(out)), &w); err != nil {
		t.Fatalf("window line %q: %v", out, err)
	}
	if w.EndMs-w.StartMs < 2000 || w.Start == "" || w.End == "" || w.Timezone == "" || len(w.Targets) != 3 {
		t.Fatalf("window = %+v", w)
	}
	if err := load.Wait(); err != nil {
		t.Fatalf("workload: %v\n%s", err, loadOut.String())
	}
	var rep bankReport
	if err := json.Unmarshal([]byte(loadOut.String()), &rep); err != nil {
		t.Fatalf("workload report: %v\n%s", err, loadOut.String())
	}
	t.Logf("window %d ms; workload: %+v", w.EndMs-w.StartMs, rep.Stats)
	if rep.Stats.Failed != 0 || rep.Stats.Paused == 0 || rep.Invariants == nil || !rep.Invariants.OK() {
		t.Fatalf("workload through a pause: %+v %+v", rep.Stats, rep.Invariants)
	}
	// No commit decision inside the window; decisions before and after it.
	st := multistorage.New(loadConfig(t, c))
	defer st.Close()
	rows, err := st.ScanAll(context.Background(), storage.ScanAll{Namespace: schema.CoordinatorNamespace, Table: schema.CoordinatorTable})
	if err != nil {
		t.Fatal(err)
	}
	var before, inside, after int
	for _, r := range rows {
		at := r[schema.CoordinatorCreatedAt].(int64)
		switch {
		case at < w.StartMs:
			before++
		case at <= w.EndMs:
			inside++
			t.Errorf("transaction %v decided at %d, inside the paused window [%d, %d]", r[schema.TxID], at, w.StartMs, w.EndMs)
		default:
			after++
		}
	}
	if before == 0 || after == 0 || inside != 0 {
		t.Fatalf("decisions before/inside/after the window: %d/%d/%d", before, inside, after)
	}
	checkVerify(t, c)
}

func TestPauseWithOneTargetDownUnpausesTheOthers(t *testing.T) {
	c := cli{t: t, bin: build(t), args: []string{"--data-dir", t.TempDir()}}
	a, b := startServer(t, c), startServer(t, c)
	down := freePort(t) // nothing listens here
	out, code := c.run("admin", "pause", "-a", strings.Join([]string{a.addr, down, b.addr}, ","), "--duration", "1s", "--timeout", "3s")
	if code == 0 {
		t.Fatalf("pause with a target down succeeded: %s", out)
	}
	for _, s := range []*serverProc{a, b} {
		if out, code := c.run("--json", "admin", "check-paused", "-a", s.addr); code != 0 || strings.Contains(out, "true") {
			t.Fatalf("target %s after a failed pause: exit %d %s", s.addr, code, out)
		}
	}
}

func TestKilledClientServersUnpauseByLease(t *testing.T) {
	c := cli{t: t, bin: build(t), args: []string{"--data-dir", t.TempDir()}}
	servers := []*serverProc{startServer(t, c, "--pause-lease", "2s"), startServer(t, c, "--pause-lease", "2s")}
	targets := servers[0].addr + "," + servers[1].addr
	holder := exec.Command(c.bin, append(c.args, "admin", "pause", "-a", targets, "--duration", "5m", "--renew-every", "0")...)
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	waitPaused(t, c, targets, true, 10*time.Second)
	holder.Process.Signal(syscall.SIGKILL) // the orchestrator dies mid-pause
	holder.Wait()
	waitPaused(t, c, targets, false, 15*time.Second)
	for _, s := range servers {
		if !strings.Contains(s.logs(), "lease") {
			t.Errorf("server %s unpaused without logging why:\n%s", s.addr, s.logs())
		}
	}
}

func waitPaused(t *testing.T, c cli, targets string, want bool, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		out, _ := c.run("--json", "admin", "check-paused", "-a", targets)
		if got := strings.Count(out, "true"); (want && got == 2) || (!want && got == 0 && strings.Contains(out, "false")) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("targets not paused=%v after %v: %s", want, limit, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// loadConfig reads the config a cli uses.
func loadConfig(t *testing.T, c cli) *config.Config {
	t.Helper()
	var path, dir string
	for i := 0; i+1 < len(c.args); i++ {
		switch c.args[i] {
		case "--config":
			path = c.args[i+1]
		case "--data-dir":
			dir = c.args[i+1]
		}
	}
	cfg, err := config.Load(path, dir)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// freePortOn is a free port on the local address host.
func freePortOn(t *testing.T, host string) string {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// nonLoopbackIP is an address of one of this machine's interfaces that is
// up and not loopback, on which the admin listener is served as in a real
// deployment, and the allow-list entry of the source a local client
// connecting to it has (the same address). Without one, it falls back,
// saying so, to 127.0.0.2, to which local clients connect from 127.0.0.1.
func nonLoopbackIP(t *testing.T) (host, allow string) {
	t.Helper()
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && ipn.IP.IsGlobalUnicast() {
				return ipn.IP.String(), ipn.IP.String() + "/32"
			}
		}
	}
	t.Logf("no interface has a non-loopback IPv4 address: the admin listener is tested on 127.0.0.2 instead")
	return "127.0.0.2", "127.0.0.1/32"
}

// scalar-admin's own admin.proto, through grpcurl, pauses (with drain),
// checks and unpauses a server through its admin listener on a
// non-loopback address of this machine (nonLoopbackIP), while the main
// listener keeps requiring the token and the application keeps serving
// transactions with it.
func TestScalarAdminThroughTheAdminListener(t *testing.T) {
	c := cli{t: t, bin: build(t), args: []string{"--data-dir", t.TempDir()}}
	if out, code := c.run("workload", "bank", "--count", "1"); code != 0 {
		t.Fatalf("create bank: %s", out)
	}
	host, allow := nonLoopbackIP(t)
	adminAddr := freePortOn(t, host)
	t.Logf("admin listener on %s, allowing %s", adminAddr, allow)
	s := startServer(t, c, "--token", "s3cret", "--pause-lease", "1s", "--admin-listen", adminAddr, "--admin-allow", allow)
	opts, err := admin.DialOptions{Token: "s3cret"}.GRPCOptions()
	if err != nil {
		t.Fatal(err)
	}
	app, err := client.Dial(s.addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	ctx := context.Background()
	transfer := func() error {
		tx, err := app.Begin(ctx, consensus.Snapshot, "")
		if err != nil {
			return err
		}
		if _, err := tx.Get(ctx, storage.Get{Namespace: "bank_0", Table: "accounts", Key: storage.Key{"account_id": 1}}); err != nil {
			return err
		}
		return tx.Commit(ctx)
	}
	check := func(method, body, want string) {
		t.Helper()
		out, err := scalarAdmin(adminAddr, method, body)
		if err != nil || !strings.Contains(out, want) || (want == "{}" && strings.Contains(out, "paused")) {
			t.Fatalf("scalar-admin %s %s = %q, %v; want %q", method, body, out, err, want)
		}
	}
	if err := transfer(); err != nil {
		t.Fatalf("a transaction with the token before the pause: %v", err)
	}
	check("CheckPaused", "{}", "{}")

	// Pause with drain waits for the transaction in flight.
	tx, err := app.Begin(ctx, consensus.Snapshot, "")
	if err != nil {
		t.Fatal(err)
	}
	paused := make(chan string, 1)
	go func() {
		out, err := scalarAdmin(adminAddr, "Pause", `{"wait_outstanding": true}`)
		if err != nil {
			out += err.Error()
		}
		paused <- out
	}()
	testenv.Await(t, "the pause to close the gate", func() bool {
		out, _ := scalarAdmin(adminAddr, "CheckPaused", "{}")
		return strings.Contains(out, `"paused": true`)
	})
	select {
	case out := <-paused:
		t.Fatalf("Pause returned before the transaction in flight finished: %s", out)
	default:
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("the transaction in flight could not commit during the drain: %v", err)
	}
	if out := <-paused; strings.TrimSpace(out) != "{}" {
		t.Fatalf("Pause with drain = %q, want {}", out)
	}

	// Never renewed, the pause holds past several leases (1s each).
	pausedAt, checks := time.Now(), 0
	for time.Since(pausedAt) < 3*time.Second {
		check("CheckPaused", "{}", `"paused": true`)
		checks++
	}
	t.Logf("paused through %d checks over %v, past a 1s lease", checks, time.Since(pausedAt).Round(time.Millisecond))
	if err := transfer(); !errors.Is(err, client.ErrPaused) {
		t.Fatalf("a transaction while paused: %v, want refused as paused", err)
	}
	check("Unpause", "{}", "{}")
	check("Unpause", "{}", "{}") // idempotent: scalar-admin-for-kubernetes retries
	check("CheckPaused", "{}", "{}")
	if err := transfer(); err != nil {
		t.Fatalf("a transaction with the token after Unpause: %v", err)
	}

	// A negative max_pause_wait_time is no wait: with a transaction in
	// flight the pause fails, and the server stays open.
	tx, err = app.Begin(ctx, consensus.Snapshot, "")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := scalarAdmin(adminAddr, "Pause", `{"wait_outstanding": true, "max_pause_wait_time": -1}`); err == nil || !strings.Contains(out, "FailedPrecondition") {
		t.Fatalf("Pause with a negative wait and a transaction in flight = %q, %v; want FailedPrecondition", out, err)
	}
	check("CheckPaused", "{}", "{}")
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	// The main listener still requires the token for rpc.Admin.
	if out, err := scalarAdmin(s.addr, "Pause", "{}"); err == nil || !strings.Contains(out, "Unauthenticated") {
		t.Fatalf("Pause on the main listener without the token = %q, %v; want Unauthenticated", out, err)
	}
}

// An admin listener whose allow-list excludes the client's source refuses
// it before any RPC.
func TestAdminListenerRefusesSourcesOutsideTheAllowList(t *testing.T) {
	c := cli{t: t, bin: build(t), args: []string{"--data-dir", t.TempDir()}}
	adminAddr := freePortOn(t, "127.0.0.2")
	s := startServer(t, c, "--admin-listen", adminAddr, "--admin-allow", "127.0.0.2/32")
	out, err := scalarAdmin(adminAddr, "Pause", "{}")
	if err == nil {
		t.Fatalf("Pause from 127.0.0.1, outside --admin-allow 127.0.0.2/32, succeeded: %s", out)
	}
	if out, code := c.run("--json", "admin", "check-paused", "-a", s.addr); code != 0 || strings.Contains(out, "true") {
		t.Fatalf("check-paused after a refused Pause = %d %s", code, out)
	}
	testenv.Await(t, "the server to log the refused connection", func() bool { return strings.Contains(s.logs(), "refused a connection from outside --admin-allow") })
}
