"""A small layered SVG drawing of a graph, for when Graphviz is not installed.

Final tasks stand in the right-most column; each upstream node stands one column left of
the leftmost task that takes it. Edges are curves labelled by input name.
"""

from __future__ import annotations

from html import escape

__all__ = ["layered"]

CHAR_W, LINE_H, PAD, GAP_X, GAP_Y = 6.6, 14, 8, 70, 18


def _columns(ids: list[str], edges: list[tuple[str, str, str]], roots: list[str]
             ) -> dict[str, int]:
    """Distance of each node from the final tasks (longest path, cycles cut)."""
    ups: dict[str, list[str]] = {i: [] for i in ids}
    for src, dst, _ in edges:
        if src != dst:
            ups[dst].append(src)
    depth = {i: 0 for i in ids}
    for root in roots:
        stack, on_path = [(root, 0)], set()
        while stack:
            node, d = stack.pop()
            if d < 0:  # leaving the node
                on_path.discard(node)
                continue
            depth[node] = max(depth[node], d)
            on_path.add(node)
            stack.append((node, -1))
            stack.extend((u, d + 1) for u in ups[node] if u not in on_path
                         and depth[u] <= d)
    return depth


def layered(nodes: list[tuple[str, list[str], str]], edges: list[tuple[str, str, str]],
            roots: list[str]) -> str:
    """SVG text for ``nodes`` (id, label lines, fill colour) and ``edges``
    (source, target, label): data flows left to right."""
    ids = [n[0] for n in nodes]
    depth = _columns(ids, edges, roots)
    width = {nid: max(len(t) for t in lines) * CHAR_W + 2 * PAD for nid, lines, _ in nodes}
    height = {nid: len(lines) * LINE_H + PAD for nid, lines, _ in nodes}
    n_cols = max(depth.values(), default=0) + 1
    cols: list[list[str]] = [[] for _ in range(n_cols)]
    for nid in ids:
        cols[n_cols - 1 - depth[nid]].append(nid)
    col_w = [max((width[n] for n in col), default=0) for col in cols]
    col_h = [sum(height[n] + GAP_Y for n in col) - GAP_Y for col in cols]
    total_h = max(col_h, default=0) + 2 * PAD
    pos: dict[str, tuple[float, float]] = {}
    x: float = PAD
    for c, col in enumerate(cols):
        y = PAD + (total_h - 2 * PAD - col_h[c]) / 2
        for nid in col:
            pos[nid] = (x + (col_w[c] - width[nid]) / 2, y)
            y += height[nid] + GAP_Y
        x += col_w[c] + GAP_X
    total_w = x - GAP_X + PAD
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{total_w:.0f}" '
           f'height="{total_h:.0f}" viewBox="0 0 {total_w:.0f} {total_h:.0f}" '
           'font-family="Helvetica, Arial, sans-serif" font-size="11">',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
           'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555"/>'
           "</marker></defs>"]
    for src, dst, label in edges:
        if src == dst:
            continue
        (x1, y1), (x2, y2) = pos[src], pos[dst]
        x1, y1 = x1 + width[src], y1 + height[src] / 2
        y2 = y2 + height[dst] / 2
        mid = (x1 + x2) / 2
        out.append(f'<path d="M{x1:.1f},{y1:.1f} C{mid:.1f},{y1:.1f} {mid:.1f},{y2:.1f} '
                   f'{x2:.1f},{y2:.1f}" fill="none" stroke="#555" marker-end="url(#arrow)"/>')
        out.append(f'<text x="{mid:.1f}" y="{(y1 + y2) / 2 - 3:.1f}" text-anchor="middle" '
                   f'fill="#333" font-size="10">{escape(label)}</text>')
    for nid, lines, fill in nodes:
        x0, y0 = pos[nid]
        out.append(f'<g><title>{escape(lines[0])}</title><rect x="{x0:.1f}" y="{y0:.1f}" '
                   f'width="{width[nid]:.1f}" height="{height[nid]:.1f}" rx="6" '
                   f'fill="{fill}" stroke="#444"/>')
        for k, text in enumerate(lines):
            weight = ' font-weight="bold"' if k == 0 else ""
            out.append(f'<text x="{x0 + PAD:.1f}" y="{y0 + PAD / 2 + LINE_H * (k + 0.8):.1f}"'
                       f"{weight}>{escape(text)}</text>")
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"
