"""The demo organization `make run` creates with `manage.py load_demo`, and its login
(development only)."""

DEMO_EMAIL = "demo@trueup.example"
DEMO_PASSWORD = "trueup-demo-2026"
DEMO_ORGANIZATION = "Demo MSP"
