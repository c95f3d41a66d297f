"""The dashboard's pages: thin scripts over `dashboards.ui`, `dashboards.data`, `dashboards.panels`."""
