"""Reporters: the terminal summary (`terminal`), the self-contained HTML report (`html` and its
`html_*` sections, `svg` charts), the run as a JSON file (`json_report`), scores as JUnit XML
properties (`junit`), and the hooks that write the files after a session (`files`)."""
