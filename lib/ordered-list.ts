/**
 * One link of an intrusive doubly linked list. An owner that sits in several orders holds one link per order,
 * allocated once with the owner, so moving it costs a few pointer writes and never an allocation.
 */
export class Link<T> {
  prev: Link<T> | null = null
  next: Link<T> | null = null
  /** Whether the link is in its list: moving an unlinked owner would corrupt the ends. */
  linked = false
  constructor (readonly owner: T) {}
}

/**
 * A list kept in the order links were last appended: the head is the one appended longest ago. Walking from
 * either end yields the oldest or newest first, so neither a sweep nor a dump ever sorts.
 */
export class OrderedList<T> {
  head: Link<T> | null = null
  tail: Link<T> | null = null

  /** Appends, or moves to the tail: O(1). */
  moveToTail (link: Link<T>): void {
    if (this.tail === link) return
    if (link.linked) this.unlink(link)
    link.prev = this.tail
    link.next = null
    if (this.tail !== null) this.tail.next = link
    else this.head = link
    this.tail = link
    link.linked = true
  }

  unlink (link: Link<T>): void {
    if (!link.linked) return
    if (link.prev !== null) link.prev.next = link.next
    else this.head = link.next
    if (link.next !== null) link.next.prev = link.prev
    else this.tail = link.prev
    link.prev = null
    link.next = null
    link.linked = false
  }
}
