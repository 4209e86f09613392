package admin

// ApplyResponse is the body of a successful POST /api/v1/apply.
type ApplyResponse struct {
	// Applied names the services that were created or updated.
	Applied []string `json:"applied"`
}
