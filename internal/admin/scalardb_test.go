package admin_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/stillpoint/stillpoint/internal/admin"
	"github.com/stillpoint/stillpoint/internal/testenv"
)

// Hold with ScalarDB Server targets beside a Stillpoint server: with
// CheckPaused proof allowed, targets that have CheckPaused get a window
// (renewals go to the Stillpoint server, none to them); one without
// CheckPaused, or without the allowance, gets none, and a ScalarDB target
// found open at the end voids the window. Every target is unpaused either
// way.
func TestHoldScalarDBTargets(t *testing.T) {
	tests := []struct {
		name    string
		era     testenv.ScalarDBEra
		allow   bool
		unpause bool   // the ScalarDB target is unpaused during the hold
		wantErr string // "" = a valid window
	}{
		{"3.9 to 3.13 (no Stats), allowed", testenv.ScalarDB39, true, false, ""},
		{"3.6 to 3.8 (Stats {}), allowed", testenv.ScalarDB36, true, false, ""},
		{"3.4, 3.5 (no CheckPaused), allowed", testenv.ScalarDB34, true, false, "has no CheckPaused (ScalarDB Server 3.4 or 3.5?)"},
		{"3.9 to 3.13, not allowed", testenv.ScalarDB39, false, false, "reports no pause_id"},
		{"3.6 to 3.8, not allowed", testenv.ScalarDB36, false, false, "reports no pause_id"},
		{"3.9 to 3.13, unpaused during the hold", testenv.ScalarDB39, true, true, "no longer paused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sdbAddr, sdb := testenv.ScalarDBAdminServer(t, tt.era)
			// The hold lasts until a renewal has reached the Stillpoint
			// server (its second Pause), so a renewal round has completed
			// before Hold returns.
			renewed := make(chan struct{})
			spAddr, gate := testenv.AdminServer(t, admin.GateOptions{Lease: time.Minute}, testenv.BeforeCall("/rpc.Admin/Pause", func(n int32) {
				if n == 2 {
					close(renewed)
				}
			}))
			f, err := admin.NewFleet([]string{spAddr, sdbAddr}, admin.DialOptions{}, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if tt.allow {
				f.AllowCheckPausedProof()
			}
			ctx := context.Background()
			p, err := f.PauseAll(ctx, true, 0)
			if err != nil {
				t.Fatal(err)
			}
			work := func(ctx context.Context) error {
				select {
				case <-renewed:
				case <-ctx.Done():
					return ctx.Err()
				}
				if !tt.unpause {
					return nil
				}
				_, err := sdb.Unpause(ctx, &emptypb.Empty{})
				return err
			}
			w, err := f.Hold(ctx, p, 20*time.Millisecond, work)
			var iw *admin.InvalidWindowError
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Hold: %v; want a window", err)
			case tt.wantErr == "" && !w.End.After(w.Start):
				t.Errorf("window %v..%v is empty", w.Start, w.End)
			case tt.wantErr != "" && (!errors.As(err, &iw) || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), sdbAddr)):
				t.Fatalf("Hold: %v; want an invalid window naming %s and saying %q", err, sdbAddr, tt.wantErr)
			}
			if n := sdb.Pauses(); n != 1 {
				t.Errorf("the ScalarDB target got %d Pause calls, want 1: it has no lease to renew, and a renewal would hide an unpause", n)
			}
			if sdb.Paused() || gate.Paused() {
				t.Errorf("after Hold: ScalarDB target paused=%v, Stillpoint server paused=%v; want both unpaused", sdb.Paused(), gate.Paused())
			}
		})
	}
}
