"""Channel groups: which channels of which ops must be kept or removed together.

A *channel group* is a set of ``(op, channel)`` pairs tied by the topology: the inputs of an
``Add`` channel by channel, a concat's channels to the matching input channels, a depthwise conv's
output channel ``k`` to input channel ``k // multiplier``, a BatchNorm to the conv it follows.
A group's regularizer is built from its *sources* (BN gammas, conv kernels under group lasso,
gating logits) and is shared by every member.

Tiny example, ``conv1 -> bn1 -> relu -> add(relu, conv2) -> bn2`` with 4 channels everywhere,
analysed for Gamma: ``conv1``, ``bn1``, ``relu``, ``conv2``, ``add`` and ``bn2`` all hold channel
``j`` of one group ``j``; the group's sources are ``bn1[j]`` and ``bn2[j]``, combined by max.
``analyze`` returns 4 groups, each with 2 source channels.

The rules are the original library's op handlers (spec §3.4), applied to whole channel ranges and
solved as connected components, which gives the same groups as the original's slice-by-slice
crawl without its iteration order.
"""

from __future__ import annotations

import enum
import re
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .errors import ConfigurationError, GroupingError, InvalidTypeError, NoSourceError
from .graph import Graph, Op


class Role(enum.Enum):
    """How an op ties its channels to its neighbours (the original's handler classes)."""

    GROUPING = "grouping"  # passthrough: same-size inputs are merged channel by channel
    CONCAT = "concat"  # channel-axis concat maps each input to its own range
    DEPTHWISE = "depthwise"  # output k tied to input k // multiplier
    OUTPUT_NON_PASSTHROUGH = "output_non_passthrough"  # conv/matmul: never merged with inputs
    LEAF = "leaf"  # reshape/flatten: breaks the chain


@dataclass(frozen=True)
class OpHandler:
    """The grouping role of an op type and, for sources, which parameter regularizes it."""

    role: Role
    source: str | None = None  # "gamma", "group_lasso" or "gating"
    grouping_indices: tuple[int, ...] | None = None

    @property
    def is_source(self) -> bool:
        return self.source is not None

    @property
    def is_passthrough(self) -> bool:
        return self.role in (Role.GROUPING, Role.CONCAT, Role.DEPTHWISE)


_GROUPING = OpHandler(Role.GROUPING)
_ONP = OpHandler(Role.OUTPUT_NON_PASSTHROUGH)
_LEAF = OpHandler(Role.LEAF)

BASE_HANDLERS: Mapping[str, OpHandler] = {
    "ConcatV2": OpHandler(Role.CONCAT),
    "DepthwiseConv2dNative": OpHandler(Role.DEPTHWISE),
    **{t: _ONP for t in ("DepthToSpace", "ExpandDims", "Transpose")},
    **{
        t: _LEAF
        for t in (
            "RandomUniform",
            "Reshape",
            "Shape",
            "SpaceToDepth",
            "StridedSlice",
            "TensorArrayGatherV3",
        )
    },
    **{
        t: OpHandler(Role.GROUPING, grouping_indices=(0,))
        for t in ("ResizeArea", "ResizeBicubic", "ResizeBilinear", "ResizeNearestNeighbor")
    },
}
_CONV_TYPES = ("Conv2D", "Conv3D", "MatMul", "Conv2DBackpropInput")
_BN_TYPES = ("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3")


def handlers_for(algorithm: str, *, conv3d: bool = True) -> dict[str, OpHandler]:
    """The op-handler table of one algorithm family (spec §1, table "What each family puts").

    Args:
        algorithm: ``"gamma"``, ``"group_lasso"`` or ``"logistic_sigmoid"``.
        conv3d: whether Conv3D is a group-lasso source (False for the activation regularizer).
    """
    table = dict(BASE_HANDLERS)
    if algorithm == "gamma":
        table.update({t: _ONP for t in _CONV_TYPES})
        table.update({t: OpHandler(Role.GROUPING, source="gamma") for t in _BN_TYPES})
    elif algorithm == "group_lasso":
        source = OpHandler(Role.OUTPUT_NON_PASSTHROUGH, source="group_lasso")
        table.update({t: source for t in _CONV_TYPES if conv3d or t != "Conv3D"})
    elif algorithm == "logistic_sigmoid":
        table.update({t: _ONP for t in _CONV_TYPES})
        table["LogisticSigmoidGating"] = OpHandler(Role.GROUPING, source="gating")
    else:
        raise ConfigurationError(
            f"algorithm must be one of 'gamma', 'group_lasso', 'logistic_sigmoid', "
            f"but got {algorithm!r}"
        )
    return table


@dataclass(frozen=True)
class _Link:
    """Channels ``a[a0 + i]`` and ``b[b0 + i]`` are tied for ``i < n`` (or ``b0 + i // m``)."""

    a: int
    a0: int
    b: int
    b0: int
    n: int
    multiplier: int = 1  # depthwise: a is the output, b the input, a[k] ~ b[k // m]


@dataclass(frozen=True)
class ChannelGroups:
    """Result of grouping a graph for one algorithm.

    Attributes:
        graph: the analysed graph.
        handlers: the op-handler table used.
        crawl: ops reached from the output boundary without crossing the input boundary.
        touched: ops linked to a source (the ops ``get_cost()`` sums over, spec §3.2 step 5).
        sources: source ops in topological order; their vectors are laid end to end in ``S``.
        source_offsets: start of each source op's channels in ``S``.
        num_groups: number of groups that have a (non-blacklisted) source.
        group_sources: for each group, positions in ``S`` of its source channels.
        channel_group: per op, the group index of each channel, or -1 without regularizer.
    """

    graph: Graph
    handlers: Mapping[str, OpHandler]
    crawl: frozenset[int]
    touched: frozenset[int]
    sources: tuple[int, ...]
    source_offsets: tuple[int, ...]
    num_groups: int
    group_sources: tuple[tuple[int, ...], ...]
    channel_group: tuple[np.ndarray, ...] = field(repr=False)

    def handler(self, op: Op) -> OpHandler:
        return self.handlers.get(op.type, _GROUPING)

    def groups_of(self, op_index: int) -> np.ndarray:
        return self.channel_group[op_index]

    def same_group(self, a: int, b: int) -> bool:
        """Whether two ops' channels are all in the same groups (for tests and debugging)."""
        ga, gb = self.channel_group[a], self.channel_group[b]
        return bool(len(ga) == len(gb) and np.all(ga == gb) and np.all(ga >= 0))


def _crawl(graph: Graph, outputs: Sequence[int], input_boundary: set[int]) -> set[int]:
    seen: set[int] = set()
    crawl: set[int] = set()
    stack = list(outputs)
    while stack:
        i = stack.pop()
        if i in seen:
            continue
        seen.add(i)
        if i in input_boundary:
            continue
        crawl.add(i)
        stack.extend(r.producer for r in graph.ops[i].inputs if r.producer is not None)
    return crawl


def _concat_is_channel_axis(op: Op) -> bool:
    axis = int(op.attrs.get("axis", -1))  # type: ignore[call-overload]
    rank = len(op.shape)
    return axis in (-1, rank - 1)


def _links(graph: Graph, crawl: set[int], handlers: Mapping[str, OpHandler]) -> list[_Link]:
    links: list[_Link] = []
    for i in sorted(crawl):
        op = graph.ops[i]
        handler = handlers.get(op.type, _GROUPING)
        role = handler.role
        if role is Role.CONCAT and not _concat_is_channel_axis(op):
            role = Role.GROUPING
        if role is Role.CONCAT:
            offset = 0
            for ref in op.inputs:
                if ref.producer is not None and ref.producer in crawl:
                    links.append(_Link(i, offset, ref.producer, 0, ref.channels))
                offset += ref.channels
        elif role is Role.DEPTHWISE:
            m = int(op.attrs.get("multiplier", 1))  # type: ignore[call-overload]
            ref = op.inputs[0]
            if ref.producer is not None and ref.producer in crawl:
                if m == 1:
                    links.extend(_grouping_links(graph, i, op, (ref,)))
                else:
                    links.append(_Link(i, 0, ref.producer, 0, op.size, multiplier=m))
        elif role is Role.GROUPING:
            refs = op.inputs
            if handler.grouping_indices is not None:
                refs = tuple(refs[k] for k in handler.grouping_indices if k < len(refs))
            refs = tuple(r for r in refs if r.producer is not None and r.producer in crawl)
            links.extend(_grouping_links(graph, i, op, refs))
    return links


def _grouping_links(graph: Graph, i: int, op: Op, refs: Sequence) -> list[_Link]:
    out = []
    for ref in refs:
        size = graph.ops[ref.producer].size
        if size == op.size:
            if size:
                out.append(_Link(i, 0, ref.producer, 0, size))
        elif size > 1:
            producer = graph.ops[ref.producer]
            raise GroupingError(
                f"op {op.name!r} (layer {op.layer!r}) combines {op.size} channels with "
                f"{size} channels from {producer.name!r}; MorphNet can only group same-size or "
                f"1-channel (broadcast) inputs. Put this part of the network outside the "
                f"regularized region with input_boundary/output_boundary."
            )
    return out


def _touched(
    graph: Graph, crawl: set[int], handlers: Mapping[str, OpHandler], sources: list[int]
) -> set[int]:
    touched = set(sources)
    queue = deque(sources)
    while queue:
        i = queue.popleft()
        op = graph.ops[i]
        neighbours = [c for c in graph.consumers(i) if c in crawl]
        if handlers.get(op.type, _GROUPING).role is not Role.LEAF:
            neighbours += [r.producer for r in op.inputs if r.producer is not None]
        for n in neighbours:
            if n in crawl and n not in touched:
                touched.add(n)
                queue.append(n)
    return touched


def _cuts(graph: Graph, links: Sequence[_Link]) -> dict[int, set[int]]:
    """Cut points of each op's channel slicing (the original slices ops at concat boundaries)."""
    cuts: dict[int, set[int]] = {}

    def add(op: int, p: int) -> bool:
        if 0 < p < graph.ops[op].size and p not in cuts.setdefault(op, set()):
            cuts[op].add(p)
            return True
        return False

    for link in links:
        if link.multiplier > 1:
            for k in range(1, graph.ops[link.a].size):
                add(link.a, k)
            for k in range(1, graph.ops[link.b].size):
                add(link.b, k)
            continue
        for op, start in ((link.a, link.a0), (link.b, link.b0)):
            add(op, start)
            add(op, start + link.n)
    changed = True
    while changed:
        changed = False
        for link in links:
            if link.multiplier > 1:
                continue
            for src, s0, dst, d0 in (
                (link.a, link.a0, link.b, link.b0),
                (link.b, link.b0, link.a, link.a0),
            ):
                for p in list(cuts.get(src, ())):
                    if s0 < p < s0 + link.n and add(dst, d0 + p - s0):
                        changed = True
    return cuts


def _force_group_links(
    graph: Graph, touched: set[int], force_group: Sequence[str], links: list[_Link]
) -> list[_Link]:
    out: list[_Link] = []
    cuts = _cuts(graph, links)
    for regex in force_group:
        matched = [i for i in sorted(touched) if re.search(regex, graph.ops[i].name)]
        if not matched:
            raise ConfigurationError(
                f"force_group regex {regex!r} did not match any op of the regularized network; "
                f"op names look like {graph.ops[sorted(touched)[0]].name!r}"
            )
        sliced = [graph.ops[i].name for i in matched if cuts.get(i)]
        if sliced:
            raise ConfigurationError(
                f"Cannot force-group ops with more than 1 OpSlice: {sliced}; force_group only "
                f"ties whole ops, so exclude concatenated ops from regex {regex!r}"
            )
        sizes = {graph.ops[i].size for i in matched}
        if len(sizes) > 1:
            names = [f"{graph.ops[i].name} ({graph.ops[i].size})" for i in matched]
            raise ConfigurationError(
                f"Cannot force-group ops with different sizes: {names} (regex {regex!r})"
            )
        out.extend(_Link(matched[0], 0, j, 0, graph.ops[j].size) for j in matched[1:])
    return out


def _check_regex_list(value: object, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise InvalidTypeError(
            f"{what} must be a list of regex strings, but got {what}={value!r}; "
            f"wrap a single pattern in a list: [{value!r}]"
        )
    for v in value:
        try:
            re.compile(v)
        except re.error as exc:
            raise ConfigurationError(f"{what} entry {v!r} is not a valid regex: {exc}") from exc
    return list(value)


def analyze(
    graph: Graph,
    handlers: Mapping[str, OpHandler],
    *,
    output_boundary: Sequence[int] | None = None,
    input_boundary: Sequence[int] | None = None,
    force_group: Sequence[str] | None = None,
    regularizer_blacklist: Sequence[str] | None = None,
    algorithm_name: str = "this algorithm",
) -> ChannelGroups:
    """Group the channels of ``graph`` under ``handlers`` (spec §3).

    Raises:
        NoSourceError: nothing in the crawled network can be regularized.
        GroupingError: an op merges inputs of incompatible sizes.
        ConfigurationError: a bad force_group or blacklist regex.
    """
    force = _check_regex_list(force_group, "force_group")
    black = _check_regex_list(regularizer_blacklist, "regularizer_blacklist")
    outputs = list(output_boundary if output_boundary is not None else graph.outputs)
    boundary = set(input_boundary if input_boundary is not None else graph.inputs)
    crawl = _crawl(graph, outputs, boundary)
    links = _links(graph, crawl, handlers)
    sources = [i for i in sorted(crawl) if _is_source(graph.ops[i], handlers)]
    if not sources:
        raise NoSourceError(
            f"{algorithm_name} found nothing to regularize between the input and output "
            f"boundaries of model {graph.model_name!r}: " + _no_source_hint(handlers)
        )
    touched = _touched(graph, crawl, handlers, sources)
    if force:
        links = links + _force_group_links(graph, touched, force, links)

    base = np.zeros(len(graph.ops) + 1, dtype=np.int64)
    np.cumsum([op.size for op in graph.ops], out=base[1:])
    labels = _components(base, links)

    blocked: set[int] = set()
    if black:
        joined = "|".join(black)
        hits = [i for i in sorted(touched) if re.search(joined, graph.ops[i].name)]
        if not hits:
            raise ConfigurationError(
                f"Blacklist regex never used: {joined!r}; it must match the name of an op in "
                f"the regularized network (op names are '<layer>/<OpType>')"
            )
        for i in hits:
            blocked.update(labels[base[i] : base[i + 1]].tolist())

    source_offsets, pos = [], 0
    for s in sources:
        source_offsets.append(pos)
        pos += graph.ops[s].size
    comp_to_group: dict[int, int] = {}
    members: list[list[int]] = []
    for s, off in zip(sources, source_offsets, strict=True):
        for c, comp in enumerate(labels[base[s] : base[s + 1]].tolist()):
            if comp in blocked:
                continue
            g = comp_to_group.setdefault(comp, len(members))
            if g == len(members):
                members.append([])
            members[g].append(off + c)
    lookup = np.full(int(labels.max(initial=0)) + 1, -1, dtype=np.int64)
    for comp, g in comp_to_group.items():
        lookup[comp] = g
    channel_group = tuple(
        lookup[labels[base[i] : base[i + 1]]] if i in crawl else np.full(op.size, -1, np.int64)
        for i, op in enumerate(graph.ops)
    )
    return ChannelGroups(
        graph=graph,
        handlers=dict(handlers),
        crawl=frozenset(crawl),
        touched=frozenset(touched),
        sources=tuple(sources),
        source_offsets=tuple(source_offsets),
        num_groups=len(members),
        group_sources=tuple(tuple(m) for m in members),
        channel_group=channel_group,
    )


def _components(base: np.ndarray, links: Sequence[_Link]) -> np.ndarray:
    total = int(base[-1])
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    for link in links:
        k = np.arange(link.n, dtype=np.int64)
        rows.append(base[link.a] + link.a0 + k)
        cols.append(base[link.b] + link.b0 + k // link.multiplier)
    if rows:
        r, c = np.concatenate(rows), np.concatenate(cols)
    else:
        r = c = np.zeros(0, dtype=np.int64)
    matrix = coo_matrix((np.ones(len(r), dtype=np.int8), (r, c)), shape=(total, total))
    _, labels = connected_components(matrix, directed=False)
    return np.asarray(labels, dtype=np.int64)


def _no_source_hint(handlers: Mapping[str, OpHandler]) -> str:
    kinds = {h.source for h in handlers.values() if h.source}
    if "gamma" in kinds:
        return (
            "Gamma needs BatchNormalization(scale=True) layers on the channel axis; add them "
            "after the convolutions or use a GroupLasso regularizer."
        )
    if "gating" in kinds:
        return (
            "LogisticSigmoid needs LogisticSigmoidGating layers (temperature > 0); insert them "
            "with add_gating(model) or use a GroupLasso regularizer."
        )
    return (
        "GroupLasso needs Conv/Dense layers inside the boundaries; check input_boundary and "
        "output_boundary."
    )


def _is_source(op: Op, handlers: Mapping[str, OpHandler]) -> bool:
    # A BatchNormalization without a learnable scale has the BN op type but nothing to regularize.
    return handlers.get(op.type, _GROUPING).is_source and not op.attrs.get("not_source", False)
