package sqlstore

// Texts is how many statement texts the store keeps (texts.go).
func Texts(s *Store) int { return s.texts.len() }
