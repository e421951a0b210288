package importfile

import (
	"bytes"
	"mime"
	"path"
	"strings"

	"github.com/panelsync/panelsync/models"
)

// DetectFormat tells the format of a data file from what an upload says
// of it and its first bytes (head; 512 bytes are plenty). A content type
// that names CSV or JSON decides; a generic one (none, text/plain,
// application/octet-stream, or the application/vnd.ms-excel browsers send
// for .csv files) defers to the file name's extension, .csv or .json; with
// neither, a file whose first character (after a byte order mark and
// spaces) is "[" or "{" is JSON and any other text is CSV. It refuses a
// content type or extension of another format, a charset other than
// UTF-8, a spreadsheet's binary file and UTF-16 text with a *models.Error
// of code unsupported_media_type.
func DetectFormat(contentType, filename string, head []byte) (Format, error) {
	if format, decided, err := formatOfContentType(contentType); err != nil || decided {
		return format, err
	}
	switch ext := strings.ToLower(path.Ext(strings.ReplaceAll(filename, `\`, "/"))); ext {
	case ".csv":
		return FormatCSV, nil
	case ".json":
		return FormatJSON, nil
	case ".xlsx", ".xlsm", ".xls", ".ods", ".numbers":
		return "", spreadsheetError()
	}
	return sniffFormat(head)
}

// formatOfContentType returns the format a content type names, and
// whether it names one; an error for a type or charset the import refuses.
func formatOfContentType(contentType string) (Format, bool, error) {
	if strings.TrimSpace(contentType) == "" {
		return "", false, nil
	}
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		// Clients get multipart part headers wrong often enough that a
		// malformed one is ignored, not held against the file.
		return "", false, nil
	}
	if charset, ok := params["charset"]; ok {
		switch strings.ToLower(charset) {
		case "utf-8", "utf8", "us-ascii":
		default:
			return "", false, models.Errorf(models.CodeUnsupportedMediaType, "the data file must be UTF-8, not %s", quote(charset))
		}
	}
	switch mediaType {
	case "text/csv", "application/csv", "text/comma-separated-values", "text/x-csv", "application/x-csv":
		return FormatCSV, true, nil
	case "application/json", "text/json":
		return FormatJSON, true, nil
	case "", "text/plain", "application/octet-stream", "binary/octet-stream", "application/vnd.ms-excel":
		return "", false, nil
	case "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "application/vnd.oasis.opendocument.spreadsheet":
		return "", false, spreadsheetError()
	}
	if strings.HasSuffix(mediaType, "+json") {
		return FormatJSON, true, nil
	}
	return "", false, models.Errorf(models.CodeUnsupportedMediaType, "the data file must be CSV or JSON, not %s", quote(mediaType))
}

// sniffFormat tells JSON from CSV by the first character.
func sniffFormat(head []byte) (Format, error) {
	head = bytes.TrimPrefix(head, byteOrderMark)
	switch {
	case bytes.HasPrefix(head, []byte("PK\x03\x04")), bytes.HasPrefix(head, []byte{0xD0, 0xCF, 0x11, 0xE0}):
		return "", spreadsheetError()
	case bytes.HasPrefix(head, []byte{0xFF, 0xFE}), bytes.HasPrefix(head, []byte{0xFE, 0xFF}):
		return "", models.Errorf(models.CodeUnsupportedMediaType, "the data file is UTF-16: save it as UTF-8")
	case bytes.IndexByte(head, 0) >= 0:
		return "", models.Errorf(models.CodeUnsupportedMediaType, "the data file is not text: upload CSV or JSON")
	}
	// Text that is empty so far is taken for CSV: Parse then says what is
	// wrong with it.
	if text := bytes.TrimLeft(head, " \t\r\n"); len(text) > 0 && (text[0] == '[' || text[0] == '{') {
		return FormatJSON, nil
	}
	return FormatCSV, nil
}

func spreadsheetError() error {
	return models.Errorf(models.CodeUnsupportedMediaType, "the data file is a spreadsheet workbook: save it as CSV (UTF-8) and upload that")
}
