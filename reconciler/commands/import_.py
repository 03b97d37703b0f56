"""`cronctl import`: other tools' cron jobs as cron files (one per job, canonical format).

Sources: AWS Copilot Scheduled Job manifests, ecschedule configurations, live EventBridge
rules / Scheduler schedules running ECS tasks, Kubernetes CronJobs, and cron files in the
legacy format. The conversion is ``core/importers`` (pure); this module reads the files,
asks the AWS adapter, proves each result (``verify``: equal next 100 fire times, a file that
loads) and writes what passed, never over an existing file unless ``--force``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from reconciler.core.desired import rule_name
from reconciler.core.importers import (
    aws_live,
    copilot,
    ecschedule,
    kubernetes,
    legacy,
)
from reconciler.core.importers.model import ImportedCron, ImportResult, Refused
from reconciler.core.importers.render import render
from reconciler.core.importers.verify import FIRE_TIMES, verify

HELP = "import cron jobs from Copilot, ecschedule, AWS, Kubernetes or legacy cron files"
DESCRIPTION = f"""\
Write one cron file per job found in SOURCE under --out (default crons.d), in the canonical
format (container:), each starting with a comment that names where it came from and what
was not carried over. Every field that could not be carried over is reported; every job
that cannot be converted faithfully is refused with the file, the field and the reason, and
nothing is written for it. Each written file is checked as cronctl validate checks it, and
a standard 5-field schedule is proven equal to its AWS cron() by their next {FIRE_TIMES} fire
times.

Sources:
  cronctl import copilot PATH...            Copilot manifest.yml files (or folders holding them)
  cronctl import ecschedule FILE            an ecschedule YAML/JSON configuration
  cronctl import aws --rules-prefix P       live EventBridge rules named P... with ECS targets
  cronctl import aws --schedule-group G     live Scheduler schedules of group G with ECS targets
  cronctl import kubernetes FILE...         batch/v1 CronJob manifests (multi-document YAML)
  cronctl import legacy DIR                 cron files with 'description:' rewritten as 'container:'

An existing file is never overwritten (that job is refused) unless --force is given.
--dry-run writes nothing and prints what would be written.
Exit status: 0 when every job was imported, 1 when any was refused.
"""
MAX_SOURCE_BYTES = 1024 * 1024


def register(subparsers) -> None:
    parser = subparsers.add_parser("import", help=HELP, description=DESCRIPTION,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", default="crons.d", metavar="DIR",
                        help="folder to write the cron files into (default crons.d)")
    common.add_argument("--dry-run", action="store_true",
                        help="write nothing; print what would be written")
    common.add_argument("--force", action="store_true",
                        help="replace files that already exist")
    common.add_argument("--output", choices=["text", "json"], default="text",
                        help="report format (default text)")
    image = argparse.ArgumentParser(add_help=False)
    image.add_argument("--image", action="append", default=[], metavar="JOB=IMAGE",
                       help="the image of a job whose image the source does not name "
                            "(Copilot image.build, an ecschedule task definition); repeatable")
    sources = parser.add_subparsers(dest="source", metavar="SOURCE", required=True)
    sub = sources.add_parser("copilot", parents=[common, image],
                             help="AWS Copilot Scheduled Job manifests")
    sub.add_argument("paths", nargs="+", metavar="PATH")
    sub = sources.add_parser("ecschedule", parents=[common, image],
                             help="an ecschedule configuration (YAML or JSON)")
    sub.add_argument("paths", nargs=1, metavar="FILE")
    sub = sources.add_parser("kubernetes", parents=[common],
                             help="Kubernetes batch/v1 CronJob manifests")
    sub.add_argument("paths", nargs="+", metavar="FILE")
    sub = sources.add_parser("legacy", parents=[common],
                             help="cron files in the legacy format ('description:')")
    sub.add_argument("paths", nargs=1, metavar="DIR")
    sub = sources.add_parser("aws", parents=[common],
                             help="live EventBridge rules or Scheduler schedules with ECS targets")
    which = sub.add_mutually_exclusive_group(required=True)
    which.add_argument("--rules-prefix", metavar="P",
                       help="rules (default event bus) whose names start with P; the cron's "
                            "name is the rule's name without P")
    which.add_argument("--schedule-group", metavar="G", help="schedules of Scheduler group G")
    sub.add_argument("--adopt", action="store_true",
                     help="let the first reconcile take the imported rules/schedules over "
                          "(see README: Adopting live schedules)")
    sub.add_argument("--namespace", default=None,
                     help="the namespace that adopts them (CRONCTL_NAMESPACE, default crons)")
    sub.epilog = ("--adopt: each imported rule is tagged as cronctl's for its cron, and the "
                  "schedules of the namespace's own group through the group. The first "
                  "reconcile writes the cron's registry item first, then takes a rule named "
                  "<namespace>-<cron> (import them with --rules-prefix <namespace>-), or a "
                  "schedule, over in place (its target becomes cronctl's dispatch); a rule by "
                  "another name cannot be renamed: its file gets 'replaces: {rule: NAME}', and "
                  "that reconcile hands the rule over to dispatch, creates the cron's own "
                  "schedule, then deletes the rule. Either way no run is lost or started twice. Schedules "
                  "of another group are refused.")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    try:
        images = parse_images(getattr(args, "image", []))
    except ValueError as error:
        print(f"cronctl import: {error}", file=sys.stderr)
        return 2
    adoption = None
    if args.source == "aws":
        result, adoption = read_aws(args)
    else:
        result = read_sources(args.source, args.paths, images)
    result = verify(result, now)
    if adoption is not None:
        # checked again: the files as written (a renamed rule's cron gets ``replaces:``)
        result = verify(aws_live.adoptable(result, adoption.namespace), now)
    written, refused = write(result, Path(args.out), args.dry_run, args.force)
    adopted: list[dict] = []
    if adoption is not None and not args.dry_run:
        adopted = adoption(written, refused)
    report(args, written, refused, adopted)
    return 1 if refused else 0


def parse_images(values: list[str]) -> dict[str, str]:
    images: dict[str, str] = {}
    for value in values:
        job, sep, image = value.partition("=")
        if not sep or not job or not image:
            raise ValueError(f"--image {value!r}: expected JOB=IMAGE")
        images[job] = image
    return images


def _files(paths: list[str], names: tuple[str, ...]) -> list[tuple[str, str | None]]:
    """(file, None) for files found, (path, error) for paths that cannot be read."""
    found: list[tuple[str, str | None]] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            matches = sorted(p for p in path.rglob("*") if p.is_file() and
                             (p.name in names or p.suffix in names))
            found += [(str(p), None) for p in matches]
            if not matches:
                found.append((given, f"no {' or '.join(names)} file in this folder"))
        elif path.is_file():
            found.append((given, None))
        else:
            found.append((given, "no such file or folder"))
    return found


def read_text(path: str) -> str:
    """The file's text; ``ValueError`` with the reason when it cannot be read as one."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_SOURCE_BYTES + 1)
    except OSError as error:
        raise ValueError(f"cannot be read: {error.strerror}") from None
    if len(data) > MAX_SOURCE_BYTES:
        raise ValueError("larger than 1 MiB; not a job definition")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"not UTF-8 text (byte {error.start})") from None


def read_sources(source: str, paths: list[str], images: dict[str, str]) -> ImportResult:
    result = ImportResult()
    if source == "legacy":
        root = Path(paths[0])
        if not root.is_dir():
            return ImportResult(refused=(Refused(paths[0], "", "", "not a folder"),))
        for path, _ in _files([paths[0]], (".yaml", ".yml")):
            try:
                text = read_text(path)
            except ValueError as error:
                result += ImportResult(refused=(Refused(path, "", "", str(error)),))
                continue
            relative = Path(path).relative_to(root).as_posix()
            result += legacy.convert(relative, text, path)
        return result
    names = {"copilot": ("manifest.yml", "manifest.yaml"),
             "kubernetes": (".yaml", ".yml"),
             "ecschedule": (".yaml", ".yml", ".json")}[source]
    for path, problem in _files(paths, names):
        if problem is None and source == "ecschedule" and path.endswith(".jsonnet"):
            problem = "Jsonnet: render it first (jsonnet FILE > config.json) and import the JSON"
        text = None
        if problem is None:
            try:
                text = read_text(path)
            except ValueError as error:
                problem = str(error)
        if problem is not None or text is None:
            result += ImportResult(refused=(Refused(path, "", "", problem or ""),))
        elif source == "copilot":
            name = Path(path).parent.name
            result += copilot.convert(path, text, images.get(name) or _named_image(text, images))
        elif source == "kubernetes":
            result += kubernetes.convert(path, text)
        else:
            result += ecschedule.convert(path, text, images)
    return result


def _named_image(text: str, images: dict[str, str]) -> str | None:
    """The --image given for the manifest's ``name:``."""
    for line in text.splitlines():
        if line.startswith("name:"):
            return images.get(line.partition(":")[2].strip().strip("'\""))
    return None


def read_aws(args: argparse.Namespace):
    """Live rules or schedules converted, and (with --adopt) the step run after writing."""
    from reconciler.adapters import importing
    from reconciler.adapters.aws import AwsClients
    from reconciler.commands.common import settings_from_args

    settings = settings_from_args(args)
    clients = AwsClients(settings)
    if args.rules_prefix is not None:
        live = importing.read_rules(clients, args.rules_prefix)
        result = aws_live.convert(live, strip_prefix=args.rules_prefix)
    else:
        live = importing.read_schedules(clients, args.schedule_group)
        result = aws_live.convert(live)
    if not live:
        what = (f"rule named {args.rules_prefix}..." if args.rules_prefix is not None
                else f"schedule in group {args.schedule_group}")
        result += ImportResult(refused=(Refused("aws", "", "", f"no {what} was found"),))
    if not args.adopt:
        return result, None
    return result, Adoption(clients, settings.namespace)


class Adoption:
    """``--adopt``, after the files are written: tag what the next reconcile takes over in
    place (``aws_live.adoptable`` decided what can be)."""

    def __init__(self, clients, namespace: str) -> None:
        self.clients = clients
        self.namespace = namespace

    def __call__(self, written, refused: list[Refused]) -> list[dict]:
        from reconciler.adapters import importing

        done: list[dict] = []
        group_tagged = False
        for cron, _, _ in written:
            target = cron.adopt
            if target.kind == "rule":
                importing.adopt_rule(self.clients, target.arn, self.namespace, cron.name)
            elif any(r.source_file.startswith("schedule ") for r in refused):
                continue  # the group's refused schedules would become crons without files
            elif not group_tagged:
                importing.adopt_group(self.clients, self.namespace)
                group_tagged = True
            replaces = cron.document.get("replaces")
            how = ("the next reconcile takes it over in place: the registry first, then its "
                   "target becomes the dispatch topic")
            if replaces:
                how = (f"the cron replaces it (replaces: {{rule: {replaces['rule']}}}): the "
                       "next reconcile writes the registry first, hands the rule over to the "
                       "dispatch topic, creates the cron's own schedule (rule "
                       f"{rule_name(self.namespace, cron.name)} on the rules backend), then "
                       "deletes the rule")
            done.append({"cron": cron.name, "kind": target.kind, "name": target.name,
                         "how": how})
        return done


def write(result: ImportResult, out: Path, dry_run: bool,
          force: bool) -> tuple[list[tuple[ImportedCron, Path, str]], list[Refused]]:
    """Write each cron not refused; an existing file (or a second job of the same name) is
    refused instead unless ``force``."""
    refused = list(result.refused)
    written: list[tuple[ImportedCron, Path, str]] = []
    taken: dict[str, Path] = {}
    existing = _existing_names(out)
    for cron in result.crons:
        target = out / cron.path
        text = render(cron, cron.body)
        problem = None
        if cron.name in taken:
            problem = f"another job of this run is also named {cron.name!r} ({taken[cron.name]})"
        elif target.exists() and not force:
            problem = f"{target} exists; not overwritten (--force replaces it)"
        elif cron.name in existing and existing[cron.name] != target and not force:
            problem = f"a cron named {cron.name!r} already exists: {existing[cron.name]}"
        if problem:
            refused.append(Refused(cron.source_file, cron.origin, "", problem, cron.name))
            continue
        taken[cron.name] = target
        if not dry_run:
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.importing")
            partial.write_text(text, encoding="utf-8")
            os.replace(partial, target)
        written.append((cron, target, text))
    return written, refused


def _existing_names(out: Path) -> dict[str, Path]:
    if not out.is_dir():
        return {}
    return {path.stem: path for path in sorted(out.rglob("*"))
            if path.suffix in (".yaml", ".yml") and path.is_file()}


def report(args: argparse.Namespace, written, refused: list[Refused],
           adopted: list[dict]) -> None:
    if args.output == "json":
        print(json.dumps({
            "dry_run": args.dry_run,
            "imported": [{"name": cron.name, "file": str(target), "source": cron.source_file,
                          "origin": cron.origin, "schedule": cron.document.get("schedule"),
                          "not_carried_over": [{"field": d.field, "reason": d.reason}
                                               for d in cron.dropped],
                          **({"content": text} if args.dry_run else {})}
                         for cron, target, text in written],
            "refused": [{"name": r.name, "source": r.source_file, "origin": r.origin,
                         "field": r.field, "reason": r.reason} for r in refused],
            "adopted": adopted,
        }, indent=2))
        return
    verb = "would write" if args.dry_run else "wrote"
    for cron, target, text in written:
        print(f"{verb} {target}  (from {cron.source_file}, {cron.origin})")
        for item in cron.dropped:
            print(f"  not carried over: {item.field}: {item.reason}")
        if args.dry_run:
            print("".join(f"    {line}\n" for line in text.splitlines()), end="")
    for item in adopted:
        print(f"adopted {item['kind']} {item['name']} for cron {item['cron']}: {item['how']}")
    for item in refused:
        print(f"refused: {item}")
    count = len(written)
    print(f"{count} job{'' if count == 1 else 's'} {'to import' if args.dry_run else 'imported'}"
          f", {len(refused)} refused.")
