"""``python -m sandboxes --port 8001 [--knowbe4-schema 2023|current]``: serve every sandbox."""

import argparse

import uvicorn

from sandboxes import data
from sandboxes.app import build_app
from sandboxes.knowbe4 import SCHEMAS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m sandboxes", description="Serve the KnowBe4 and PSA sandboxes."
    )
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument(
        "--knowbe4-schema",
        choices=SCHEMAS,
        default="2023",
        help="GraphQL schema generation for keys with none set (default: 2023)",
    )
    args = parser.parse_args(argv)
    app = build_app(knowbe4_schema=args.knowbe4_schema)

    base = f"http://127.0.0.1:{args.port}"
    print(f"Sandboxes on {base}/ (KnowBe4 schema {args.knowbe4_schema})")
    for region in data.REGIONS:
        print(f"  KnowBe4 {region.upper()} GraphQL:   {base}/knowbe4/{region}/graphql")
    for region in data.REGIONS:
        print(f"  KnowBe4 {region.upper()} Reporting: {base}/knowbe4-api/{region}")
    print(f"  Control: {base}/_sandbox/knowbe4/keys, POST {base}/_sandbox/reset")
    print(f"Demo KnowBe4 partner key (US): {data.DEMO_PARTNER_KEY}", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="info")


if __name__ == "__main__":
    main()
