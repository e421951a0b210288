// Package browsertest drives the web console in a real, headless Chromium
// against a real node with simulated panels, and proves what a person at
// the screen would notice: signing in, the Locations page following sync
// outcomes live, the Event Log staying whole across a dropped connection,
// held runs applied from their page, and API key secrets shown once.
//
// The tests need Debian's chromium (apt-get install chromium); without it
// they skip, except in CI, where they fail. Every page a test visits is
// saved as full-page PNG screenshots at phone, tablet and desktop widths
// (390, 820 and 1280 px), named <page>-<width>.png, in the folder named by
// PANELSYNC_SCREENSHOTS, or else in screenshots/ at the repository root.
package browsertest
