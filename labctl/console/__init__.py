"""`labctl console`: the operator console in the browser.

Benches (live tiles), Start (form from the procedure's parameters, Check =
`labctl validate`, Start = `labctl run` in its own process), control (pause,
continue, stop through the run's control inbox), runs with their plots and
downloads, and the station's qualification records. Built on Starlette +
uvicorn; Plotly.js is served from the installed `plotly` package (no CDN).
docs/console.md describes it; security.py states the security rules.
"""
