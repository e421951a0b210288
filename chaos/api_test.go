package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// call sends one JSON request to a node, with a bearer token when given,
// and decodes a 2xx answer into out.
func call(n *node, method, path, token, body string, out any) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, n.base+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%s %s answered %d: %.300s", method, path, resp.StatusCode, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// login signs the account's owner in on node n and returns an access
// token.
func login(n *node, acct account) (string, error) {
	body, _ := json.Marshal(map[string]string{"email": acct.email, "password": acct.password})
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if _, err := call(n, http.MethodPost, "/v1/auth/login", "", string(body), &out); err != nil {
		return "", err
	}
	return out.AccessToken, nil
}

// startBatch asks node n for a users sync of All Locations and returns
// the batch's id.
func startBatch(n *node, token string) (string, error) {
	var out struct {
		Batch struct {
			ID string `json:"id"`
		} `json:"batch"`
	}
	if _, err := call(n, http.MethodPost, "/v1/sync", token, `{"kind":"users","scope":"all"}`, &out); err != nil {
		return "", err
	}
	return out.Batch.ID, nil
}
