package handlers

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/web"
)

// consolePolicy is the web console's Content-Security-Policy. Every
// script and style comes from this server and none is inline, so an
// injected tag or attribute runs nothing; the page may only talk to this
// server (its API and /v1/realtime); it cannot be framed, which keeps
// the sync buttons out of reach of clickjacking.
const consolePolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// consoleFile is one file of the console, prepared once: the server
// answers from memory, compressed when the browser accepts it.
type consoleFile struct {
	body        []byte
	gzipped     []byte
	contentType string
	etag        string
}

// consoleHandlers serves the web console's page and files.
type consoleHandlers struct {
	files map[string]consoleFile
}

// newConsoleHandlers reads every file of the console once.
func newConsoleHandlers(files fs.FS) (consoleHandlers, error) {
	h := consoleHandlers{files: map[string]consoleFile{}}
	err := fs.WalkDir(files, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(files, name)
		if err != nil {
			return err
		}
		var zipped bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&zipped, gzip.BestCompression)
		if _, err := zw.Write(body); err != nil {
			return err
		}
		if err := zw.Close(); err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		h.files[name] = consoleFile{
			body:        body,
			gzipped:     zipped.Bytes(),
			contentType: web.ContentType(name),
			etag:        `"` + hex.EncodeToString(sum[:12]) + `"`,
		}
		return nil
	})
	if err != nil {
		return consoleHandlers{}, fmt.Errorf("reading the web console: %w", err)
	}
	if _, ok := h.files["index.html"]; !ok {
		return consoleHandlers{}, fmt.Errorf("reading the web console: no index.html")
	}
	return h, nil
}

// routes registers the page and its files. The console routes inside the
// page by its fragment (/#/locations), so only the page itself and the
// two paths that mailed links point at serve it. The files live under
// /app/ so that no console path can shadow an API route.
func (h consoleHandlers) routes(app *fiber.App) {
	for _, p := range []string{"/", "/accept-invitation", "/reset-password"} {
		app.Get(p, h.page)
	}
	app.Get("/app/*", h.file)
}

func (h consoleHandlers) page(c *fiber.Ctx) error {
	c.Set("Content-Security-Policy", consolePolicy)
	c.Set("Referrer-Policy", "no-referrer")
	c.Set("X-Frame-Options", "DENY")
	return h.send(c, h.files["index.html"])
}

func (h consoleHandlers) file(c *fiber.Ctx) error {
	name := path.Clean(c.Params("*"))
	if name == "." || name == "index.html" || strings.HasPrefix(name, "..") || strings.Contains(name, `\`) {
		return models.NotFound("file")
	}
	f, ok := h.files[name]
	if !ok {
		return models.NotFound("file")
	}
	return h.send(c, f)
}

// send answers with a file. The console is replaced with the binary, so
// the browser revalidates every file (cheaply, by its ETag) rather than
// keep one from an older version.
func (h consoleHandlers) send(c *fiber.Ctx, f consoleFile) error {
	c.Set(fiber.HeaderContentType, f.contentType)
	c.Set(fiber.HeaderCacheControl, "no-cache")
	c.Set(fiber.HeaderETag, f.etag)
	c.Set(fiber.HeaderVary, fiber.HeaderAcceptEncoding)
	c.Set("X-Content-Type-Options", "nosniff")
	if match := c.Get(fiber.HeaderIfNoneMatch); match != "" && strings.Contains(match, f.etag) {
		return c.SendStatus(fiber.StatusNotModified)
	}
	if strings.Contains(c.Get(fiber.HeaderAcceptEncoding), "gzip") {
		c.Set(fiber.HeaderContentEncoding, "gzip")
		return c.Send(f.gzipped)
	}
	return c.Send(f.body)
}
