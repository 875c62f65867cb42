package testenv

import "runtime/metrics"

// GCSettings reads the collector's target (GOGC) and soft memory limit, as
// a backup or a restore that bounds its memory sets them.
func GCSettings() (gogc uint64, limit uint64) {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}, {Name: "/gc/gomemlimit:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64(), s[1].Value.Uint64()
}
