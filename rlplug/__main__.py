"""``python -m rlplug [--list] [hydra overrides ...]``: train, or list the installed plugins."""

from __future__ import annotations

import sys


def main() -> int:
    argv = sys.argv[1:]
    if argv[:1] in (["--list"], ["plugins"]):
        from rlplug.plugins import plugin_listing

        print(plugin_listing())
        return 0
    from rlplug.app import hydra_main
    from rlplug.cli import preflight, report_user_errors

    with report_user_errors("rlplug"):
        preflight(argv)
    hydra_main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
