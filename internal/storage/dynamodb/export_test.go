package dynamodb

// SetBeforeWrite sets the hook that runs between a Mutate's check and its
// writes.
func SetBeforeWrite(s *Store, f func()) { s.beforeWrite = f }

// NoTransactions reports whether the store fell back from TransactWriteItems.
func NoTransactions(s *Store) bool { return s.noTransactions.Load() }
