package backup_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/stillpoint/stillpoint/internal/admin"
	"github.com/stillpoint/stillpoint/internal/backup"
	"github.com/stillpoint/stillpoint/internal/testenv"
)

// A pause-mode backup records its window only if every server stayed
// paused and drained through it: a server whose lease runs out (paused
// again by someone or not) makes the backup fail, and nothing is listed.
func TestPauseBackupNeedsAnUninterruptedPause(t *testing.T) {
	const lease = time.Minute
	// when says when the second server's lease runs out: before it
	// handles the nth call of method.
	type when struct {
		method string
		nth    int32
	}
	tests := []struct {
		name    string
		lapse   *when
		repause bool // something pauses it again at once, without draining
		enter   bool // a transaction enters between the lapse and the re-pause
		wantErr string
	}{
		{name: "every server stays paused"},
		{name: "a server's lease runs out as the pause begins", lapse: &when{"/rpc.Admin/Stats", 1}, wantErr: "no longer paused"},
		{name: "a server's lease runs out and a pause without drain follows", lapse: &when{"/rpc.Admin/Stats", 1}, repause: true, enter: true, wantErr: "in flight"},
		{name: "a server's lease runs out during the window and it is paused again", lapse: &when{"/rpc.Admin/Stats", 2}, repause: true, wantErr: "paused again during the window"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			st := embeddedBank(t, 10)

			clock := admin.NewManualClock(time.Now())
			var gate *admin.Gate
			var lapse grpc.ServerOption = grpc.EmptyServerOption{}
			if tt.lapse != nil {
				lapse = testenv.BeforeCall(tt.lapse.method, func(n int32) {
					if n != tt.lapse.nth {
						return
					}
					clock.Advance(lease)
					if tt.enter {
						if _, err := gate.Enter(); err != nil { // never released: it stays in flight
							t.Error(err)
						}
					}
					if tt.repause {
						if err := gate.Pause(ctx, false, 0); err != nil {
							t.Error(err)
						}
					}
				})
			}
			addr0, _ := testenv.AdminServer(t, admin.GateOptions{Lease: lease})
			addr1, g := testenv.AdminServer(t, admin.GateOptions{Lease: lease, Clock: clock}, lapse)
			gate = g
			fleet, err := admin.NewFleet([]string{addr0, addr1}, admin.DialOptions{}, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer fleet.Close()
			r := newRepo(t, t.TempDir(), nil)

			m, err := backup.Create(ctx, st, r, backup.Options{Mode: backup.Pause, Fleet: fleet, PauseRenew: lease})
			listed, lerr := r.ListManifests(ctx)
			if lerr != nil {
				t.Fatal(lerr)
			}
			if tt.wantErr == "" {
				if err != nil || len(listed) != 1 || m.PausedWindow == nil || !m.PausedWindow.End.After(m.PausedWindow.Start) {
					t.Fatalf("backup: %v, listed %v, manifest %+v; want one backup with its window", err, listed, m)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), addr1) {
				t.Fatalf("backup across a lapsed pause: %v; want an error naming %s: %q", err, addr1, tt.wantErr)
			}
			if len(listed) != 0 {
				t.Errorf("a backup across a lapsed pause was listed: %v", listed)
			}
			if g.Paused() {
				t.Errorf("%s left paused after the failed backup", addr1)
			}
		})
	}
}
