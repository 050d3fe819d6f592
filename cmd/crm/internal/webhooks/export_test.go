package webhooks

// Statements is the number of statements the service ran on the read-model database.
func Statements(s *Service) int64 { return s.store.statements.Load() }
