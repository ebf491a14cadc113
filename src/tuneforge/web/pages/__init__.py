"""Console pages: each module here has a `router` (APIRouter) whose paths start with /console; app.py finds them."""
