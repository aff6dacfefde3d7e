"""`python -m layerwise plan|infer|compare|calibrate|tune ...`: the five commands, as the console
scripts `layerwise-plan`, ... run them."""

import importlib
import sys

COMMANDS = {
    "plan": "plan both layouts of a config and print predicted figures",
    "infer": "run a config's layout on this launcher's ranks (under torchrun or deepspeed)",
    "compare": "run two layouts on the same ranks and print them side by side",
    "calibrate": "measure this machine into a hardware profile",
    "tune": "run the best predicted layouts and keep the one that measures best",
}


def usage() -> str:
    lines = [f"  {name:<10} {what}" for name, what in COMMANDS.items()]
    head = "usage: python -m layerwise COMMAND [ARGS]   (COMMAND --help for its options)"
    return "\n".join([head, *lines])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"error: unknown command {command!r}\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"layerwise.cli.{command}")
    return module.main(rest)


if __name__ == "__main__":
    sys.exit(main())
