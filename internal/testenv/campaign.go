package testenv

import (
	"os"
	"strconv"
	"testing"
)

// Trials is how many trials a campaign test (TestCampaign*) runs. The
// ordinary test run uses small, so scripts/test.sh stays quick and CI still
// runs every campaign; scripts/campaign.sh sets STILLPOINT_TRIALS=full for
// the counts the issues ask for, or a number to run that many of each.
func Trials(t testing.TB, small, full int) int {
	t.Helper()
	switch v := os.Getenv("STILLPOINT_TRIALS"); v {
	case "":
		return small
	case "full":
		return full
	default:
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("STILLPOINT_TRIALS=%q: want full or a positive number", v)
		}
		return n
	}
}
